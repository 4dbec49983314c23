"""Prompt templates: every role renders from a context, nothing task-specific is baked in, and a
user's folder overrides the shipped file."""

import re

import pytest

from discover.agents.roles import research_context
from discover.experiments.baselines import builtin_baselines
from discover.experiments.contract import CONTRACT
from discover.experiments.tasks import TASKS, get_task
from discover.prompts.templates import PROMPT_DIR, ROLES, PromptError, render


def task_info(name="mqar"):
    task = get_task(name)
    return {"name": task.name, "description": task.description, "metric": task.metric,
            "higher_is_better": task.higher_is_better}  # fmt: skip


PARENT = {
    "name": "gated",
    "fitness": 0.61,
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
