"""Prompt templates: every role renders from a context, nothing task-specific is baked in, and a
user's folder overrides the shipped file."""

import re

import pytest

from discover.agents import memory
from discover.agents.grammar import CLASSICS, Genome, readable_name
from discover.agents.grammar import render as render_genome
from discover.agents.roles import research_context
from discover.experiments.baselines import builtin_baselines
from discover.experiments.contract import CONTRACT
from discover.experiments.tasks import TASKS, get_task
from discover.knowledge_base.schema import Verification
from discover.prompts.templates import PROMPT_DIR, ROLES, PromptError, render
from tests.test_experiment_counts import write_experiments


def task_info(name="mqar"):
    task = get_task(name)
    return {"name": task.name, "description": task.description, "metric": task.metric,
            "higher_is_better": task.higher_is_better}  # fmt: skip


PARENT = {
    "name": "gated",
    "fitness": 0.61,
    "hypothesis": "forgetting stale pairs frees the state for new ones",
    "motivation": "forget gate",
    "code": "class Mixer: ...",
    "value": 0.9,
}
CONTEXTS = {
    "researcher": {
        "task": task_info(), "contract": CONTRACT,
        "baselines": [{"name": "softmax_attention", "value": 0.99}], "parents": [PARENT],
        "elites": [PARENT], "failures": ["low-rank state: NaN at step 40"],
        "findings": [{"verdict": "refutes", "kind": "finding", "text": "fixed decay hurts recall"}],
        "duplicates": ["gated_mix-e00007: the same idea as gated_mix-e00002"],
        "documents": [{"title": "Short convolutions", "text": "local context for keys"}],
        "claims": [
            {"design": "conv_gate", "baseline": "softmax_attention", "beats": True, "difference": 0.012,
             "q_value": 0.01, "seeds": [1, 2, 3, 4, 5], "replication": "held"},
        ],
        "motif_findings": {"shown": [
            {"id": "f1", "change": "decay: none -> data", "verdict": "supports", "effect": 0.042,
             "low": 0.010, "high": 0.074, "confidence": 0.9},
            {"id": "f2", "change": "heads: 4 -> 8", "verdict": "inconclusive", "effect": -0.01,
             "low": None, "high": None, "confidence": None},
        ], "more": 3},
        "tried": {"shown": [{"name": "gated", "summary": "a forget gate on the state", "fitness": 0.93,
                             "outcome": "screened"}], "more": 40, "total": 41},
        "study_duplicates": {"shown": ["gated_mix-e00009: the same idea as gated_mix-e00004"], "more": 2},
        "budget": {"total_hours": 10.0, "spent_hours": 6.5, "reserved_hours": 0.25, "left_hours": 3.25,
                   "experiments": 12,
                   "outcomes": {"trained": 7, "duplicate": 3, "no_code": 1, "rejected": 1}},
    },
    "coder": {
        "task": task_info(), "contract": CONTRACT, "parent": PARENT, "previous_code": "class Mixer: pass",
        "proposal": {"name": "conv_gate", "hypothesis": "h", "design_plan": "p"},
        "verdict": {"failures": [{"name": "causality", "reason": "output at t depends on t+1"}]},
    },
    "analyst": {
        "task": task_info("lm"), "candidate": {"name": "conv_gate", "hypothesis": "h"},
        "run": {"status": "succeeded", "failure_reason": None, "value": 2.41, "fitness": 0.58},
        "verification": {
            "baseline": "softmax_attention", "seeds": [1, 2, 3], "status": "complete", "reason": None,
            "values": [2.41, 2.43, 2.40], "baseline_values": [2.61, 2.60, 2.63], "difference": 0.2,
            "interval_low": 0.17, "interval_high": 0.23, "p_value": 0.002, "q_value": 0.004, "alpha": 0.05,
            "beats": True,
        },
        "parents": [PARENT], "baselines": [{"name": "softmax_attention", "value": 2.61}],
    },
    "judge": {
        "task": task_info(), "candidate": {**PARENT, "hypothesis": "h"}, "run": {"value": 0.9},
        "baselines": [{"name": "softmax_attention", "value": 0.99}],
    },
}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_every_role_renders_its_context(role):
    text = render(role, CONTEXTS[role])
    assert CONTEXTS[role]["task"]["description"] in text
    if role in ("researcher", "coder"):
        assert "class Mixer(torch.nn.Module)" in text  # the contract is quoted, not paraphrased


def test_the_analyst_sees_a_screening_run_as_one_seed_and_the_verification_in_full():
    text = render("analyst", CONTEXTS["analyst"])
    assert "one screening run (one seed: a measurement, not evidence of a difference)" in text
    assert "p = 0.002, q = 0.004" in text and "the design beats the baseline" in text
    unverified = render("analyst", {**CONTEXTS["analyst"], "verification": None})
    assert "Verification" not in unverified


def test_the_researcher_sees_screening_as_one_seed_and_wins_only_as_verified_claims():
    text = render("researcher", CONTEXTS["researcher"])
    assert "screening fitness 0." in text and "one seed" in text
    claim = "conv_gate against softmax_attention: beats it (mean gain +0.0120, q = 0.01, 5 seeds;"
    assert f"{claim} replication: held)" in text
    assert "Verified at full fidelity" not in render("researcher", {**CONTEXTS["researcher"], "claims": []})


def test_the_researcher_is_told_which_of_its_plans_repeated_an_earlier_design():
    text = render("researcher", CONTEXTS["researcher"])
    assert "repeated designs already tried" in text and "the same idea as gated_mix-e00002" in text
    assert "repeated designs" not in render("researcher", {**CONTEXTS["researcher"], "duplicates": []})


def test_the_coder_is_shown_why_its_last_attempt_failed():
    text = render("coder", CONTEXTS["coder"])
    assert "causality: output at t depends on t+1" in text and "class Mixer: pass" in text
    assert "previous attempt" not in render("coder", {**CONTEXTS["coder"], "verdict": None})


def test_templates_name_no_task_and_no_baseline():
    names = [*TASKS, *builtin_baselines(), "DeltaNet", "MQAR", "associative recall"]
    for path in PROMPT_DIR.glob("*.j2"):
        text = path.read_text().lower()
        baked = [name for name in names if re.search(rf"\b{re.escape(name.lower())}\b", text)]
        assert not baked, f"{path.name} hard-codes {baked}"


def test_a_user_folder_overrides_a_role(tmp_path):
    (tmp_path / "researcher.j2").write_text("Propose something for {{ task.name }}.")
    assert render("researcher", CONTEXTS["researcher"], tmp_path) == "Propose something for mqar."
    assert "Reference baselines" not in render("researcher", CONTEXTS["researcher"], tmp_path)
    assert render("coder", CONTEXTS["coder"], tmp_path) == render("coder", CONTEXTS["coder"])  # others stay


def test_prompt_errors_are_one_line(tmp_path):
    with pytest.raises(PromptError, match="needs a value it was not given"):
        render("researcher", {"task": task_info()})
    with pytest.raises(PromptError, match="no prompt template for role 'critic'"):
        render("critic", {})
    (tmp_path / "analyst.j2").write_text("{% if %}")
    with pytest.raises(PromptError, match="line 1"):
        render("analyst", CONTEXTS["analyst"], tmp_path)
    with pytest.raises(PromptError, match="does not exist"):
        render("analyst", CONTEXTS["analyst"], tmp_path / "missing")


def test_the_researcher_is_warned_only_of_ideas_that_failed_for_good(bare_study):
    """A first attempt the coder repaired into a design that trained is not a failure to avoid."""
    study, kb = bare_study, bare_study.kb
    for experiment, attempts in (("e00001", ["rejected", "succeeded"]), ("e00002", ["rejected", "rejected"])):
        for repair, status in enumerate(attempts):
            design = kb.add_architecture(
                f"idea-{experiment}-r{repair}", f"code {experiment} {repair}", "llm", "m", [],
                study_id=study.study_id, experiment_id=experiment,
            )  # fmt: skip
            trained = status == "succeeded"
            kb.add_run(
                design.id, "mqar", study_id=study.study_id, status=status, fitness=0.5 if trained else None,
                failure_reason=None if trained else f"causality: {experiment} attempt {repair}",
                result={"value": 0.5} if trained else {},
            )  # fmt: skip
    failures = research_context(study, [])["failures"]
    assert failures == [
        "idea-e00002-r1: causality: e00002 attempt 1",
        "idea-e00002-r0: causality: e00002 attempt 0",
    ]


# A one-seed screening result is a measurement: none of these words may describe one.
WIN = re.compile(r"\b(beat|beats|beating|wins?|won|winner|winning|outperforms?|superior|better than)\b", re.I)


def test_the_researcher_sees_the_study_so_far_in_bounded_lines():
    text = render("researcher", CONTEXTS["researcher"])
    assert "- [supports] decay: none -> data: +0.042, 90% interval [+0.010, +0.074]" in text
    assert "- [inconclusive] heads: 4 -> 8: -0.010, one pair: no interval yet" in text
    assert "... and 3 more" in text
    assert "## Designs already tried in this study (41, most recent first)" in text
    tried = "- gated: a forget gate on the state; screening fitness 0.930 (one screening run); screened"
    assert tried in text and "... and 40 earlier designs not listed" in text
    assert "- gated_mix-e00009: the same idea as gated_mix-e00004" in text and "and 2 earlier repeats" in text
    assert "3.25 of 10.00 device-hours left (6.50 spent, 0.25 held by jobs running now)" in text
    assert "Experiments so far, this one included: 12 (7 trained, 3 duplicate, 1 no code, 1 rejected)" in text
    assert "Hypothesis: forgetting stale pairs frees the state for new ones" in text
    nothing = {"shown": [], "more": 0}
    quiet = {"motif_findings": nothing, "tried": nothing | {"total": 0}, "study_duplicates": nothing}
    bare = render("researcher", CONTEXTS["researcher"] | quiet)
    assert "Motif changes" not in bare and "Designs already tried" not in bare and "repeated an" not in bare


def add_design(study, name, code, origin="llm", parents=(), status="succeeded", fitness=None, **fields):
    """A design of the study with one screening run; `fields`: its hypothesis, the run's failure
    reason and result."""
    design = study.kb.add_architecture(
        name, code, origin, f"motivation of {name}", parents, study_id=study.study_id,
        hypothesis=fields.get("hypothesis", ""),
    )  # fmt: skip
    study.kb.add_run(
        design.id, "mqar", study_id=study.study_id, fidelity="screen", status=status, fitness=fitness,
        failure_reason=fields.get("reason"), result=fields.get("result", {"value": 0.5}),
    )  # fmt: skip
    return design


PARENT_GENOME = CLASSICS["DeltaNet"]
BOLD = "two memories, one fast and one slow, keep both recent and old pairs"


def study_so_far(study):
    """A small study, written by hand: two grammar designs one motif apart and the finding on that
    change; an llm design screened far above parity but never verified; one its probes rejected;
    one computing an earlier design's function; six experiments checkpointed, one of whose plans
    repeated an earlier idea; twelve device-minutes of its hour spent. Returns the bold design."""
    child = Genome(**PARENT_GENOME.model_dump() | {"decay": "data"})
    code = render_genome(PARENT_GENOME)
    parent = add_design(study, readable_name(PARENT_GENOME), code, "evolution", fitness=0.55)
    add_design(study, readable_name(child), render_genome(child), "evolution", [parent.id], fitness=0.61)
    study.kb.add_finding(
        "Changing decay from none to data moves screening fitness by +0.042", "supports", effect_size=0.042,
        effect_interval=(0.010, 0.074), confidence=0.9, study_id=study.study_id, task="mqar",
        tags=["motif", "decay", "decay=data", "change:decay:none->data"],
    )  # fmt: skip
    bold = add_design(study, "bold_idea-e00003", "class Mixer: bold", parents=[parent.id], fitness=0.97,
                      hypothesis=BOLD)  # fmt: skip
    reason = "causality: output at t depends on t+1"
    add_design(study, "sharp_keys-e00004", "class Mixer: sharp", status="rejected", reason=reason, result={},
               hypothesis="a convolution sharpens keys")  # fmt: skip
    add_design(study, "twin-e00005", "class Mixer: twin", status="rejected",
               result={"duplicate_of": parent.id},
               reason="computes the same function as the parent; not trained again")  # fmt: skip
    endings = ["screened", "screened", "screened", "rejected", "duplicate", "duplicate"]
    states = {f"e{n:05d}": {"status": end, "ended": True} for n, end in enumerate(endings, 1)}
    states["e00006"]["duplicates"] = ["copy_idea-e00006: the same idea as bold_idea-e00003"]
    write_experiments(study.folder, states)
    assert study.ledger.reserve("job-1", 900.0)
    study.ledger.charge("job-1", 720.0, 1)
    return bold


def test_the_research_context_carries_the_study_so_far(bare_study, monkeypatch):
    study_so_far(bare_study)
    text = render("researcher", research_context(bare_study, []))
    assert "- [supports] decay: none -> data: +0.042, 90% interval [+0.010, +0.074]" in text
    assert "Changing decay from none to data" not in text  # the finding is not retrieved a second time
    parent = f"- {readable_name(PARENT_GENOME)}: {PARENT_GENOME.describe()}; screening fitness 0.550"
    assert parent in text
    assert f"- bold_idea-e00003: {BOLD}; screening fitness 0.970 (one screening run); screened" in text
    rejected = "no screening fitness; rejected by its checks: causality: output at t depends on t+1"
    assert f"- sharp_keys-e00004: a convolution sharpens keys; {rejected}" in text
    twin = f"no screening fitness; duplicate of {readable_name(PARENT_GENOME)}, not trained"
    assert f"- twin-e00005: motivation of twin-e00005; {twin}" in text
    assert "- copy_idea-e00006: the same idea as bold_idea-e00003" in text
    assert "0.80 of 1.00 device-hours left (0.20 spent)" in text
    assert "Experiments so far, this one included: 6 (3 trained, 2 duplicate, 0 no code, 1 rejected)" in text

    monkeypatch.setattr(memory, "TRIED", 2)  # a large study's list: the latest, and a count of the rest
    text = render("researcher", research_context(bare_study, []))
    assert "## Designs already tried in this study (5, most recent first)" in text
    assert f"- twin-e00005: motivation of twin-e00005; {twin}" in text
    assert f"- sharp_keys-e00004: a convolution sharpens keys; {rejected}" in text
    assert f"- bold_idea-e00003: {BOLD}" not in text
    assert "... and 3 earlier designs not listed" in text


def test_a_one_seed_screening_result_is_never_called_a_win(bare_study):
    """The design far above parity on its one screening seed is a parent, an elite and a design
    tried: nowhere is it said to beat, win or outperform anything until a verification says so."""
    bold = study_so_far(bare_study)
    context = research_context(bare_study, [bold.id]) | {"documents": []}  # the literature speaks for itself
    text = render("researcher", context)
    assert "bold_idea-e00003 (screening fitness 0.970, one seed)" in text
    assert WIN.findall(text) == []

    bare_study.kb.add_verification(Verification(
        study_id=bare_study.study_id, architecture_id=bold.id, baseline="softmax_attention", task="mqar",
        status="complete", seeds=[1, 2, 3], difference=0.02, p_value=0.004, q_value=0.01, beats=True,
    ))  # fmt: skip
    text = render("researcher", research_context(bare_study, [bold.id]) | {"documents": []})
    tried = f"- bold_idea-e00003: {BOLD}; screening fitness 0.970 (one screening run); "
    assert [line for line in text.splitlines() if WIN.search(line)] == [
        "- bold_idea-e00003 against softmax_attention: beats it (mean gain +0.0200, q = 0.01, 3 seeds; "
        "replication: not replicated)",
        tried + "verified at full fidelity: beats softmax_attention (q = 0.01, 3 paired seeds); "
        "replication: not replicated",
    ]
