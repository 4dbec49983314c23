"""One experiment as a LangGraph state graph: propose a design, vet it, train it cheaply, verify
the promising ones, and record what was learned.

    select_parents -> retrieve -> propose -> check_novelty -> write_code -> probe -> screen
        -> [judge] -> decide_promotion -> [verify] -> analyze -> record

A duplicate, a design that fails its probes (after the coder's repairs, for llm designs), or a
budget that cannot cover the next job ends the experiment early at `record`. Every node is a
plain function of (study, state) that returns the fields it changes; edges are declared in
`build_graph` only. The graph is checkpointed after every node, so a study that crashes resumes
each unfinished experiment at its last finished node (`discover run --resume`).
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph

from discover.agents import analyst, claims
from discover.agents.context import StudyContext
from discover.agents.proposers import trusted_origins
from discover.agents.proposers.base import Proposal, ProposerStop
from discover.budget.jobs import CHECK_KEY, Charged, OutOfBudget, Paused, run_key
from discover.experiments.harness import TrainResult
from discover.experiments.probes import Verdict
from discover.knowledge_base.schema import Architecture, Run, Verification
from discover.vetting.candidate import VettedCandidate, Vetting, revet, vet
from discover.vetting.trust import is_trusted


class ExperimentState(TypedDict, total=False):
    experiment_id: str
    number: int  # the experiment's place in the study; seeds its random choices
    parent_ids: list[str]
    context: dict[str, Any]  # retrieved findings and documents, for the researcher
    proposal: dict[str, Any]  # a Proposal
    architecture_id: str
    verdict: dict[str, Any]  # the last probe verdict
    vetting: dict[str, Any]  # the probed candidate's Vetting: screen and verify reuse it, unparsed
    repairs: int
    screen_run_id: str
    fitness: float  # at screening, against the best baseline
    promoted: bool
    verification: dict[str, Any]
    duplicate_of: str  # the design the probe found computing the same function
    finding_ids: list[str]
    status: str  # how the experiment ended, see ENDINGS
    reason: str


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
    "verified": "screened, promoted and trained again with several seeds",
    "awaiting_verification": "promoted, but the budget left cannot cover its verification",
}


# ----------------------------------------------------------------------------- nodes


def select_parents(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    return {"parent_ids": study.proposer.select_parents(study, state["number"])}


def retrieve(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    return {"context": study.proposer.context(study, state["parent_ids"])}


def propose(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    try:
        proposal = study.proposer.propose(study, state["number"], state["parent_ids"], state["context"])
    except ProposerStop as stop:
        return {"status": stop.status, "reason": str(stop)}
    return {"proposal": proposal.model_dump()}


def check_novelty(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """Before any device time: the proposer says how a duplicate is recognised (the same code, or
    for planned designs the same idea, before any code is written)."""
    duplicate = study.proposer.duplicate_of(study, Proposal.model_validate(state["proposal"]))
    return {} if duplicate is None else {"status": "duplicate", "reason": duplicate}


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
            experiment_id=state["experiment_id"],
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
    result = TrainResult.model_validate(run.result)
    fitness = study.score(result, reference[1], judge_score=verdict.score).value
    study.kb.update_run(run.id, fitness=fitness, result=run.result | {"judge": verdict.model_dump()})
    return {"fitness": fitness}


def decide_promotion(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    """Promote when the design is in the top `fraction` of the study's screened designs so far."""
    rule = study.config.promotion
    scores = [
        run.fitness
        for architecture, run in study.kb.study_runs(study.study_id, fidelity="screen")
        if architecture.origin != "baseline" and run.status == "succeeded" and run.fitness is not None
    ]
    if len(scores) < rule.min_screened:
        return {"promoted": False}
    rank = sum(score > state["fitness"] for score in scores)  # designs strictly better
    return {"promoted": rank < max(1, math.floor(rule.fraction * len(scores)))}


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
        return {"status": "awaiting_verification", "reason": reason}
    reference = baseline_at_full_fidelity(study, baseline, seeds)
    candidate = probed(study, state, architecture)
    for seed in seeds:
        if seed not in done:
            run = train_and_record(study, architecture, "full", seed, candidate)
            if run is None:
                return {"status": "out_of_budget", "reason": "the budget cannot cover the verification runs"}
            done[seed] = run
    record = claims.decide(study, architecture, baseline.name, seeds, seed_runs(done), reference)
    verification = {
        "id": record.id, "status": record.status, "reason": record.reason, "seeds": seeds,
        "values": record.values, "baseline": record.baseline, "baseline_values": record.baseline_values,
        "interval": [record.interval_low, record.interval_high] if record.status == "complete" else None,
        "p_value": record.p_value, "q_value": record.q_value, "beats_baseline": record.beats,
    }  # fmt: skip
    return {"verification": verification, "status": "verified"}


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
    if not findings:
        reference = study.reference("screen")
        assert reference is not None  # the study trains its baselines before any experiment
        findings = [analyst.analyze(study, state["architecture_id"], run, reference[0], reference[1].value)]
    finding_ids = [finding.id for finding in findings]
    verification = state.get("verification")
    if verification and verification.get("id"):
        record = study.kb.get(Verification, verification["id"])
        assert record is not None
        finding_ids.append(claims.record_finding(study, _architecture(study, state), record).id)
    return {"finding_ids": finding_ids}


def record(study: StudyContext, state: ExperimentState) -> dict[str, Any]:
    status = state.get("status", "failed")
    study.report(state["experiment_id"], state)
    return {"status": status}


# ----------------------------------------------------------------------------- helpers


def check_job(study: StudyContext, candidate: VettedCandidate, job_id: str) -> Charged[Verdict]:
    """The candidate's probes as one budgeted job; OutOfBudget or Paused as `BudgetedJobs.run`."""
    return study.jobs.run(
        job_id,
        CHECK_KEY,
        0,
        lambda slot: study.sandbox.check(candidate, study.spec("screen"), job_id, slot.deadline),
    )


def unused_job_id(study: StudyContext, first: str) -> str:
    """`first`, or (for a job a crash cut short on a resumed study: that id is charged) a fresh one."""
    retries = (f"{first}-again{n}" for n in itertools.count(1))
    return next(job for job in itertools.chain([first], retries) if not study.ledger.used(job))


def functional_duplicate(
    study: StudyContext, architecture: Architecture, functional_hash: str | None
) -> Architecture | None:
    """Store the probe's functional hash on the design; the earlier design of the study (or a
    baseline it trained) that computes the same function, if any."""
    if not functional_hash:
        return None
    study.kb.set_functional_hash(architecture.id, functional_hash)
    return study.kb.functional_twin(study.study_id, functional_hash, architecture.id)


def trusted(architecture: Architecture) -> bool:
    """Designs rendered from discover's own grammar and the built-in baselines are trusted (the
    process backend may run them); anything an LLM or a person wrote is not."""
    return is_trusted(architecture.code, architecture.origin, trusted_origins())


def vet_architecture(study: StudyContext, architecture: Architecture) -> VettedCandidate:
    return vet(study.candidate_file(architecture), trusted(architecture))


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


def train_and_record(
    study: StudyContext,
    architecture: Architecture,
    fidelity: str,
    seed: int,
    candidate: VettedCandidate | None = None,
) -> Run | None:
    """One budgeted training run of `candidate` (the architecture's file, vetted; vetted here when
    not given), recorded in the knowledge base from start to end; None when the budget cannot cover it."""
    spec = study.spec(fidelity, seed)
    if not study.affordable(fidelity, with_check=False):
        return None  # checked before the run is recorded; a race with another worker is caught below
    run = study.kb.add_run(
        architecture.id, study.task.name, study_id=study.study_id, fidelity=fidelity, seed=seed,
        status="running", sandbox=study.sandbox.backend.name, started_at=datetime.now(UTC),
    )  # fmt: skip
    run_dir = study.folder / "runs" / architecture.name / f"{fidelity}-seed{seed}"
    vetted = candidate or vet_architecture(study, architecture)
    try:
        charged = study.jobs.run(
            run.id, run_key(study.task.name, fidelity), spec.steps,
            lambda slot: study.sandbox.train(
                vetted, spec, slot.device, run_dir=run_dir, job_id=run.id, deadline=slot.deadline
            ),
        )  # fmt: skip
    except OutOfBudget:
        study.kb.update_run(
            run.id, status="rejected", failure_reason="not run: the budget could not cover it"
        )
        return None
    except Paused:
        study.kb.update_run(run.id, status="rejected", failure_reason="not run: the study was stopping")
        raise
    ended = {"ended_at": datetime.now(UTC), "cost_device_seconds": charged.cost, "metrics_path": str(run_dir)}
    if charged.failure is not None:
        reason = charged.failure.reason
        if charged.failure.status == "lost":  # failed by the infrastructure, every attempt
            reason = f"infrastructure: {len(charged.lost)} attempts lost with their machine; {reason}"
        return study.kb.update_run(run.id, status="failed", failure_reason=reason, **ended)
    result = charged.value
    assert result is not None
    reference = study.reference(fidelity, seed)  # None while the study's baselines are being trained
    fitness = study.score(result, reference[1]).value if reference else None
    status = "succeeded" if result.status == "ok" else "failed"
    reason = None if status == "succeeded" else "training diverged (non-finite loss or metric)"
    recorded = result.model_dump() | ({"lost_attempts": charged.lost} if charged.lost else {})
    return study.kb.update_run(
        run.id, status=status, result=recorded, fitness=fitness, failure_reason=reason, **ended
    )


def best_baseline(study: StudyContext) -> Architecture:
    """The baseline that screened best: the reference every verification is tested against."""
    reference = study.reference("screen")
    assert reference is not None  # the study trains its baselines before any experiment
    return next(
        arch
        for arch, _ in study.kb.study_runs(study.study_id, "screen")
        if arch.origin == "baseline" and arch.name == reference[0]
    )


def finished_runs(study: StudyContext, architecture: Architecture, seeds: list[int]) -> dict[int, Run]:
    """The architecture's full-fidelity runs on `seeds` that ended (succeeded or failed), by seed."""
    return {
        run.seed: run
        for arch, run in study.kb.study_runs(study.study_id, fidelity="full")
        if arch.id == architecture.id and run.seed in seeds and run.status in ("succeeded", "failed")
    }


def seed_runs(runs: dict[int, Run]) -> claims.SeedRuns:
    values = {seed: run.result["value"] for seed, run in runs.items() if run.status == "succeeded"}
    failures = {seed: run.failure_reason or run.status for seed, run in runs.items() if seed not in values}
    return claims.SeedRuns(values, failures)


def baseline_at_full_fidelity(
    study: StudyContext, baseline: Architecture, seeds: list[int]
) -> claims.SeedRuns:
    """The baseline's full-fidelity runs on `seeds`, each trained once per study (under the study's
    lock, so two verifications at once do not train it twice)."""
    with study.lock:
        done = finished_runs(study, baseline, seeds)
        candidate = None  # vetted once, for all its seeds
        for seed in seeds:
            if seed not in done:
                candidate = candidate or vet_architecture(study, baseline)
                run = train_and_record(study, baseline, "full", seed, candidate)
                if run is None:
                    break
                done[seed] = run
        return seed_runs(done)


# ----------------------------------------------------------------------------- edges


def _after_propose(state: ExperimentState) -> str:
    return "check_novelty" if "proposal" in state and not state.get("status") else "record"


def _after_novelty(state: ExperimentState) -> str:
    return "record" if state.get("status") == "duplicate" else "write_code"


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


def _after_promotion(state: ExperimentState) -> str:
    return "verify" if state.get("promoted") else "analyze"


def build_graph(study: StudyContext, checkpointer: BaseCheckpointSaver | None = None):
    graph = StateGraph(ExperimentState)
    for node in (
        select_parents, retrieve, propose, check_novelty, write_code, probe,
        screen, judge, decide_promotion, verify, analyze, record,
    ):  # fmt: skip
        graph.add_node(node.__name__, partial(node, study))
    graph.add_edge(START, "select_parents")
    graph.add_edge("select_parents", "retrieve")
    graph.add_edge("retrieve", "propose")
    graph.add_conditional_edges("propose", _after_propose, ["check_novelty", "record"])
    graph.add_conditional_edges("check_novelty", _after_novelty, ["write_code", "record"])
    graph.add_conditional_edges("write_code", _after_write_code, ["probe", "record"])
    graph.add_conditional_edges("probe", partial(_after_probe, study), ["screen", "write_code", "record"])
    graph.add_conditional_edges("screen", _after_screen, ["judge", "analyze", "record"])
    graph.add_edge("judge", "decide_promotion")
    graph.add_conditional_edges("decide_promotion", _after_promotion, ["verify", "analyze"])
    graph.add_edge("verify", "analyze")
    graph.add_edge("analyze", "record")
    graph.add_edge("record", END)
    return graph.compile(checkpointer=checkpointer)
