"""One experiment as a LangGraph state graph: propose a design, vet it, train it cheaply, verify
the promising ones, and record what was learned.

    select_parents -> retrieve -> propose -> check_novelty -> write_code -> probe -> screen
        -> [judge] -> recheck -> decide_promotion -> [climb -> verify -> replicate] -> analyze -> record

A duplicate, a design that fails its probes (after the coder's repairs, for llm designs), or a
budget that cannot cover the next job ends the experiment early at `record`. Every node is a
plain function of (study, state) that returns the fields it changes; edges are declared in
`build_graph` only. The graph is checkpointed after every node, so a study that crashes resumes
each unfinished experiment at its last finished node (`discover run --resume`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from discover.agents import analyst, claims, replication
from discover.agents.context import StudyContext
from discover.agents.leaderboard import recheck_fitness
from discover.agents.proposers.base import Proposal, ProposerStop
from discover.agents.runs import (
    baseline_runs,
    best_baseline,
    check_job,
    finished_runs,
    seed_runs,
    train_and_record,
    unused_job_id,
    vet_architecture,
)
from discover.budget.jobs import OutOfBudget
from discover.experiments.suite import result_from
from discover.knowledge_base.schema import Architecture, Run, Verification
from discover.vetting.candidate import VettedCandidate, Vetting, revet


class ExperimentState(TypedDict, total=False):
    experiment_id: str
    number: int  # the experiment's place in the study; seeds its random choices
    parent_ids: list[str]
    context: dict[str, Any]  # retrieved findings and documents, for the researcher
    proposal: dict[str, Any]  # a Proposal
    duplicates: list[str]  # this experiment's plans that repeated an earlier design, and what they repeated
    replan: bool  # the last plan was a duplicate, and the proposer is asked again
    architecture_id: str
    verdict: dict[str, Any]  # the last probe verdict
    vetting: dict[str, Any]  # the probed candidate's Vetting: screen and verify reuse it, unparsed
    repairs: int
    screen_run_id: str
    fitness: float  # at screening, against the best baseline (the lower of two, when rechecked)
    recheck: dict[str, Any]  # the too-good gate's second screening run, when it took one
    promoted: bool
    climbed: dict[str, dict[str, Any]]  # ladder rung -> its run's id, fitness and whether it went on
    verification: dict[str, Any]
    replication: dict[str, Any]  # the claim tested again (`replication.py`), or why it was not
    duplicate_of: str  # the design the probe found computing the same function
    finding_ids: list[str]
    status: str  # how the experiment ended, see ENDINGS
    ended: bool  # set by `record`, the last node: `status` is final
    reason: str


RECHECK_SEED_OFFSET = 1000  # the too-good recheck's seed, past the verification seeds (seed+1..)
RECHECK_DRAW = 1  # its held-out set (`Sandbox.heldout_seed_of`); replications draw later ones

ENDINGS = {
    "exhausted": "the proposer found no design the study has not tried",
    "no_proposal": "the researcher gave no usable plan",
    "no_code": "the coder gave no usable file",
    "llm_cap": "the LLM dollar cap is reached",
    "duplicate": "the design was tried before",
    "rejected": "the design failed its probes",
    "out_of_budget": "the budget could not cover its next job",
    "failed": "its training run failed",
    "screened": "trained at screening fidelity",
    "climbed": "promoted, but stopped on a rung of the fidelity ladder below full fidelity",
    "verified": "screened, promoted and trained again with several seeds",
    "awaiting_verification": "promoted, but the budget left cannot cover its verification",
}


# ----------------------------------------------------------------------------- nodes


def select_parents(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    return {"parent_ids": study.proposer.select_parents(study, state["number"])}


def retrieve(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    return {"context": study.proposer.context(study, state["parent_ids"])}


def propose(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    context = state["context"] | {"duplicates": state.get("duplicates", [])}
    try:
        proposal = study.proposer.propose(study, state["number"], state["parent_ids"], context)
    except ProposerStop as stop:
        return {"status": stop.status, "reason": str(stop)}
    return {"proposal": proposal.model_dump()}


def check_novelty(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """Before any device time: the proposer says how a duplicate is recognised (the same code, or
    for planned designs the same idea, before any code is written). A duplicate plan is proposed
    again, shown what it repeated, up to the proposer's `replans` times; then the experiment ends."""
    proposal = Proposal.model_validate(state["proposal"])
    duplicate = study.proposer.duplicate_of(study, proposal)
    if duplicate is None:
        return {"replan": False}
    tried = [*state.get("duplicates", []), f"{proposal.name}: {duplicate}"]
    if len(tried) <= study.proposer.replans:
        return {"duplicates": tried, "replan": True}
    return {"status": "duplicate", "reason": duplicate, "duplicates": tried, "replan": False}


def write_code(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """The candidate file: on a repair, rewritten from its last version and the probes it failed."""
    proposal = Proposal.model_validate(state["proposal"])
    repairs = state.get("repairs", 0)
    previous = _architecture(study, state).code if repairs else None
    failures = state.get("verdict", {}).get("failures", []) if repairs else []
    try:
        code = study.proposer.write_code(study, proposal, previous, failures)
    except ProposerStop as stop:
        return {"status": stop.status, "reason": str(stop)}
    name = f"{proposal.name}-r{repairs}" if repairs else proposal.name
    architecture = study.kb.find_architecture(study.study_id, code)  # a resumed node stored it already
    if architecture is None:
        architecture = study.kb.add_architecture(
            name, code, proposal.origin, proposal.motivation, proposal.parent_ids, study_id=study.study_id,
            experiment_id=state["experiment_id"], hypothesis=proposal.hypothesis,
        )  # fmt: skip
    study.candidate_file(architecture)
    return {"architecture_id": architecture.id}


def probe(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    architecture = _architecture(study, state)
    candidate = vet_architecture(study, architecture)  # the one static check of this candidate
    job_id = unused_job_id(study, f"{state['experiment_id']}-check-{state.get('repairs', 0)}")
    try:
        charged = check_job(study, candidate, job_id)
    except OutOfBudget as exc:
        return {"status": "out_of_budget", "reason": str(exc)}
    if charged.failure is not None:
        failures = [{"name": "check_job", "reason": charged.failure.reason}]
        verdict = {"passed": False, "failures": failures}
    else:
        assert charged.value is not None
        failures = [{"name": probe.name, "reason": probe.reason} for probe in charged.value.failures()]
        probes = [probe.model_dump(include={"name", "passed", "reason"}) for probe in charged.value.probes]
        verdict = {"passed": charged.value.passed, "failures": failures, "probes": probes}
    if not verdict["passed"]:
        reason = "; ".join(f"{failure['name']}: {failure['reason']}" for failure in failures)[:2000]
        study.kb.add_run(
            architecture.id, study.task.name, study_id=study.study_id, fidelity="screen",
            seed=study.config.seed, status="rejected", sandbox=study.sandbox.backend.name,
            failure_reason=reason, result={"probes": verdict.get("probes", [])},
        )  # fmt: skip
        repairs = state.get("repairs", 0) + 1
        return {"verdict": verdict, "status": "rejected", "reason": reason[:300], "repairs": repairs}
    passed = {"verdict": verdict, "vetting": candidate.vetting().model_dump(mode="json")}
    assert charged.value is not None
    twin = functional_duplicate(study, architecture, charged.value.functional_hash)
    if twin is None:
        return passed
    reason = f"computes the same function as {twin.name} (hash {twin.functional_hash}); not trained again"
    study.kb.add_run(
        architecture.id, study.task.name, study_id=study.study_id, fidelity="screen", seed=study.config.seed,
        status="rejected", sandbox=study.sandbox.backend.name, failure_reason=reason,
        result={"duplicate_of": twin.id, "probes": verdict["probes"]},
    )  # fmt: skip
    return {**passed, "status": "duplicate", "reason": reason, "duplicate_of": twin.id}


def screen(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    architecture = _architecture(study, state)
    candidate = probed(study, state, architecture)
    run = train_and_record(study, architecture, "screen", study.config.seed, candidate)
    if run is None:
        return {"status": "out_of_budget", "reason": "the budget cannot cover the screening run"}
    run = study.kb.update_run(
        run.id, result=run.result | {"probes": state.get("verdict", {}).get("probes", [])}
    )
    if run.status != "succeeded":
        return {"screen_run_id": run.id, "status": "failed", "reason": run.failure_reason or "failed"}
    return {"screen_run_id": run.id, "fitness": run.fitness, "status": "screened"}


def judge(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """The proposer's optional judge: its score fills fitness's qualitative term. A judge that fails
    leaves the fitness as the metric made it."""
    run = study.kb.get(Run, state["screen_run_id"])
    assert run is not None
    proposal = Proposal.model_validate(state["proposal"])
    try:
        verdict = study.proposer.judge(study, _architecture(study, state), proposal, run)
    except ProposerStop as stop:
        study.report(state["experiment_id"], {**state, "status": stop.status, "reason": str(stop)})
        return {}
    if verdict is None:
        return {}
    reference = study.reference("screen", run.seed)
    assert reference is not None
    result = result_from(run.result)
    fitness = study.score(result, reference[1], judge_score=verdict.score).value
    study.kb.update_run(run.id, fitness=fitness, result=run.result | {"judge": verdict.model_dump()})
    return {"fitness": fitness}


def recheck(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """The too-good gate: a design ahead of the reference by more than `scoring.too_good_margin`
    at screening is screened again, on another seed and a fresh held-out set, before it can be
    promoted. Promotion then goes by the lower of its two fitnesses; a failed recheck blocks it."""
    run = study.kb.get(Run, state["screen_run_id"])
    reference = study.reference("screen", study.config.seed)
    assert run is not None and reference is not None
    if not study.score(result_from(run.result), reference[1]).needs_verification:
        return {}
    architecture = _architecture(study, state)
    seed = study.config.seed + RECHECK_SEED_OFFSET
    candidate = probed(study, state, architecture)
    second = train_and_record(
        study, architecture, "screen", seed, candidate, RECHECK_DRAW, labels={"recheck_of": run.id}
    )
    if second is None:
        return {"status": "out_of_budget", "reason": "the budget cannot cover the too-good recheck"}
    judge_score = run.result.get("judge", {}).get("score")
    if second.status == "succeeded" and judge_score is not None:  # scored as the first run was
        result = result_from(second.result)
        second = study.kb.update_run(second.id, fitness=study.score(result, reference[1], judge_score).value)
    fitness = min(state["fitness"], recheck_fitness(second))
    summary = {
        "run_id": second.id, "seed": seed, "status": second.status, "fitness": second.fitness,
        "value": second.result.get("value"), "failure_reason": second.failure_reason,
    }  # fmt: skip
    return {"recheck": summary, "fitness": fitness}


def decide_promotion(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """Promote when the design's screening metric is ahead of the best baseline's (a verification
    tests exactly that, so one behind it is not worth the device time) and its fitness is in the
    top `fraction` of the study's screened designs so far (once `min_screened` were screened)."""
    rule = study.config.promotion
    screened = study.kb.get(Run, state["screen_run_id"])
    reference = study.reference("screen", study.config.seed)
    assert screened is not None and reference is not None
    if study.score(result_from(screened.result), reference[1]).relative_improvement <= 0:
        return {"promoted": False}
    screened = [  # one per design: a too-good recheck is not another design
        run
        for architecture, run in study.kb.study_runs(study.study_id, fidelity="screen")
        if architecture.origin != "baseline" and run.status == "succeeded" and run.fitness is not None
        and "recheck_of" not in run.result
    ]  # fmt: skip
    if len(screened) < rule.min_screened:
        return {"promoted": False}
    return {"promoted": in_top_fraction(study, "screen", state["fitness"])}


def climb(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """Up the fidelity ladder's rungs (`[[ladder]]`), cheapest first: one run on the study's seed at
    each, against the best baseline's run there (trained once per study). The design goes up a rung
    while it is ahead of that baseline and its fitness is in the top `fraction` of the designs that
    reached the rung; where it stops, it is not verified. Claims are tested at full fidelity only, so
    that every claim of a study tests the same question."""
    climbed = dict(state.get("climbed", {}))
    architecture = _architecture(study, state)
    seed, baseline = study.config.seed, best_baseline(study)
    for rung in study.rungs:
        if rung in climbed:  # run before a crash cut this node short
            if not climbed[rung]["promoted"]:
                return {"climbed": climbed, "promoted": False, "status": "climbed"}
            continue
        if not study.affordable(rung, with_check=False, runs=2):
            return {
                "climbed": climbed,
                "status": "out_of_budget",
                "reason": f"the budget cannot cover rung {rung}",
            }
        reference = baseline_runs(study, baseline, [seed], fidelity=rung)
        done = finished_runs(study, architecture, [seed], fidelity=rung)
        run = done.get(seed) or train_and_record(
            study, architecture, rung, seed, probed(study, state, architecture)
        )
        if run is None:
            return {
                "climbed": climbed,
                "status": "out_of_budget",
                "reason": f"the budget cannot cover rung {rung}",
            }
        ahead = (
            run.status == "succeeded" and seed in reference.values
            and study.task.better(run.result["value"], reference.values[seed])
        )  # fmt: skip
        promoted = ahead and in_top_fraction(study, rung, run.fitness)
        climbed[rung] = {"run_id": run.id, "fitness": run.fitness, "promoted": promoted}
        if not promoted:
            return {"climbed": climbed, "promoted": False, "status": "climbed"}
    return {"climbed": climbed}


def in_top_fraction(study: StudyContext, fidelity: str, fitness: float | None) -> bool:
    """Whether `fitness` is in the top `promotion.fraction` of the study's designs' runs at this
    fidelity (at least the best of them)."""
    if fitness is None:
        return False
    scores = [
        run.fitness
        for architecture, run in study.kb.study_runs(study.study_id, fidelity=fidelity)
        if architecture.origin != "baseline" and run.status == "succeeded" and run.fitness is not None
        and "recheck_of" not in run.result
    ]  # fmt: skip
    rank = sum(score > fitness for score in scores)  # designs strictly better
    return rank < max(1, math.floor(study.config.promotion.fraction * len(scores)))


def verify(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """Full fidelity on `promotion.seeds` seeds for the design and (once per study) the best
    baseline on the same seeds; `claims.decide` tests and records the claim. Starts only when the
    budget covers every run still missing, else the design waits, awaiting verification."""
    seeds = [study.config.seed + 1 + index for index in range(study.config.promotion.seeds)]
    architecture = _architecture(study, state)
    baseline = best_baseline(study)
    done = finished_runs(study, architecture, seeds)
    missing = len(seeds) - len(done) + len(seeds) - len(finished_runs(study, baseline, seeds))
    if missing and not study.affordable("full", with_check=False, runs=missing):
        reason = f"awaiting verification: the budget left cannot cover its {missing} full-fidelity runs"
        screened = study.kb.get(Run, state["screen_run_id"])
        assert screened is not None
        study.kb.update_run(screened.id, result=screened.result | {"awaiting_verification": reason})
        return {"status": "awaiting_verification", "reason": reason}
    already = [  # decided before a crash cut this node short: not tested twice
        row
        for row in study.kb.study_verifications(study.study_id)
        if row.architecture_id == architecture.id and row.seeds == seeds and row.replicates is None
    ]
    reference = baseline_runs(study, baseline, seeds)
    candidate = probed(study, state, architecture)
    for seed in seeds:
        if seed not in done:
            run = train_and_record(study, architecture, "full", seed, candidate)
            if run is None:
                return {"status": "out_of_budget", "reason": "the budget cannot cover the verification runs"}
            done[seed] = run
    if already:
        record = already[-1]
    else:
        record = claims.decide(study, architecture, baseline.name, seeds, seed_runs(done), reference)
    verification = {
        "id": record.id, "status": record.status, "reason": record.reason, "seeds": seeds,
        "values": record.values, "baseline": record.baseline, "baseline_values": record.baseline_values,
        "interval": [record.interval_low, record.interval_high] if record.status == "complete" else None,
        "p_value": record.p_value, "q_value": record.q_value, "beats_baseline": record.beats,
    }  # fmt: skip
    return {"verification": verification, "status": "verified"}


def replicate(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """With `promotion.replicate`, a claim just made is tested again on fresh seeds and held-out
    data, when the budget covers it (else the report says it is not replicated)."""
    verification = state.get("verification", {})
    if not (verification.get("beats_baseline") and study.config.promotion.replicate):
        return {}
    original = study.kb.get(Verification, verification["id"])
    assert original is not None
    if replication.replications_of(study, original):  # made before a crash cut this node short
        return {}
    try:
        row = replication.replicate(study, _architecture(study, state))
    except replication.NotAffordable as exc:
        return {"replication": {"status": "not replicated", "reason": str(exc)}}
    held = row.status == "complete" and row.beats
    summary = {"id": row.id, "status": row.status, "held": held, "p_value": row.p_value, "seeds": row.seeds}
    return {"replication": summary}


def analyze(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """The proposer's findings (the rule-based analyst's when it has none, or fails), and the
    verification's finding."""
    run = study.kb.get(Run, state["screen_run_id"]) if state.get("screen_run_id") else None
    proposal = Proposal.model_validate(state["proposal"])
    findings = []
    try:
        findings = study.proposer.analyze(study, _architecture(study, state), proposal, run)
    except ProposerStop as stop:
        study.report(state["experiment_id"], {**state, "status": stop.status, "reason": str(stop)})
    if not findings and (finding := analyst.analyze(study, state["architecture_id"], run)) is not None:
        findings = [finding]
    finding_ids = [finding.id for finding in findings]
    for tested in (state.get("verification"), state.get("replication")):
        if tested and tested.get("id"):
            record = study.kb.get(Verification, tested["id"])
            assert record is not None
            finding_ids.append(claims.record_finding(study, _architecture(study, state), record).id)
    return {"finding_ids": finding_ids}


def record(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    status = state.get("status", "failed")
    study.report(state["experiment_id"], state)
    return {"status": status, "ended": True}


# ----------------------------------------------------------------------------- helpers


def functional_duplicate(
    study: StudyContext, architecture: Architecture, functional_hash: str | None
) -> Architecture | None:
    """Store the probe's functional hash on the design; the earlier design of the study (or a
    baseline it trained) that computes the same function, if any."""
    if not functional_hash:
        return None
    study.kb.set_functional_hash(architecture.id, functional_hash)
    return study.kb.functional_twin(study.study_id, functional_hash, architecture.id)


def probed(study: StudyContext, state: ExperimentState, architecture: Architecture) -> VettedCandidate:
    """The experiment's candidate as its probe vetted it, without checking it again. (A state
    checkpointed before probes stored their vetting gets it now.)"""
    if "vetting" not in state:
        return vet_architecture(study, architecture)
    return revet(study.candidate_file(architecture), Vetting.model_validate(state["vetting"]))


def _architecture(study: StudyContext, state: ExperimentState) -> Architecture:
    architecture = study.kb.get(Architecture, state["architecture_id"])
    assert architecture is not None
    return architecture


# ----------------------------------------------------------------------------- edges


def _after_propose(state: ExperimentState) -> str:
    return "check_novelty" if "proposal" in state and not state.get("status") else "record"


def _after_novelty(state: ExperimentState) -> str:
    if state.get("status") == "duplicate":
        return "record"
    return "propose" if state.get("replan") else "write_code"


def _after_probe(study: StudyContext, state: ExperimentState) -> str:
    if state.get("status") == "duplicate":
        return "record"
    if state.get("verdict", {}).get("passed"):
        return "screen"
    repairable = state.get("status") == "rejected" and state["repairs"] <= study.proposer.repair_attempts
    return "write_code" if repairable else "record"


def _after_write_code(state: ExperimentState) -> str:
    return "record" if state.get("status") in ("no_code", "llm_cap") else "probe"


def _after_screen(state: ExperimentState) -> str:
    status = state.get("status")
    if status == "screened":
        return "judge"
    return "analyze" if status == "failed" else "record"


def _after_recheck(state: ExperimentState) -> str:
    return "record" if state.get("status") == "out_of_budget" else "decide_promotion"


def _after_promotion(state: ExperimentState) -> str:
    return "climb" if state.get("promoted") else "analyze"


def _after_climb(state: ExperimentState) -> str:
    if state.get("status") == "out_of_budget":
        return "record"
    return "verify" if state.get("promoted") else "analyze"


def build_graph(study: StudyContext, checkpointer: BaseCheckpointSaver | None = None):
    graph = StateGraph(ExperimentState)
    for node in (
        select_parents, retrieve, propose, check_novelty, write_code, probe,
        screen, judge, recheck, decide_promotion, climb, verify, replicate, analyze, record,
    ):  # fmt: skip
        graph.add_node(node.__name__, partial(node, study))
    graph.add_edge(START, "select_parents")
    graph.add_edge("select_parents", "retrieve")
    graph.add_edge("retrieve", "propose")
    graph.add_conditional_edges("propose", _after_propose, ["check_novelty", "record"])
    graph.add_conditional_edges("check_novelty", _after_novelty, ["propose", "write_code", "record"])
    graph.add_conditional_edges("write_code", _after_write_code, ["probe", "record"])
    graph.add_conditional_edges("probe", partial(_after_probe, study), ["screen", "write_code", "record"])
    graph.add_conditional_edges("screen", _after_screen, ["judge", "analyze", "record"])
    graph.add_edge("judge", "recheck")
    graph.add_conditional_edges("recheck", _after_recheck, ["decide_promotion", "record"])
    graph.add_conditional_edges("decide_promotion", _after_promotion, ["climb", "analyze"])
    graph.add_conditional_edges("climb", _after_climb, ["verify", "analyze", "record"])
    graph.add_edge("verify", "replicate")
    graph.add_edge("replicate", "analyze")
    graph.add_edge("analyze", "record")
    graph.add_edge("record", END)
    return graph.compile(checkpointer=checkpointer)
