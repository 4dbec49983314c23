"""A study's jobs on one design: its check job, and its training runs (budgeted, recorded in the
knowledge base from start to end), at a fidelity, seed and held-out draw; the baselines' runs that
verifications and replications compare against."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from discover.agents import claims
from discover.agents.context import StudyContext
from discover.agents.proposers import trusted_origins
from discover.budget.jobs import CHECK_KEY, Charged, OutOfBudget, Paused, run_key
from discover.experiments.probes import Verdict
from discover.knowledge_base.schema import Architecture, Run
from discover.vetting.candidate import VettedCandidate, vet
from discover.vetting.trust import is_trusted


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


def trusted(architecture: Architecture) -> bool:
    """Designs rendered from discover's own grammar and the built-in baselines are trusted (the
    process backend may run them); anything an LLM or a person wrote is not."""
    return is_trusted(architecture.code, architecture.origin, trusted_origins())


def vet_architecture(study: StudyContext, architecture: Architecture) -> VettedCandidate:
    return vet(study.candidate_file(architecture), trusted(architecture))


def train_and_record(
    study: StudyContext,
    architecture: Architecture,
    fidelity: str,
    seed: int,
    candidate: VettedCandidate | None = None,
    heldout_draw: int = 0,
    labels: dict[str, Any] | None = None,
) -> Run | None:
    """One budgeted training run of `candidate` (the architecture's file, vetted; vetted here when
    not given), scored on held-out set `heldout_draw` (0: the study's own), recorded in the
    knowledge base from start to end; None when the budget cannot cover it. `labels` (what the run
    is for: `recheck_of`, `replication_of`) and a fresh draw are kept in its result, whatever its end."""
    marks = ({"heldout_draw": heldout_draw} if heldout_draw else {}) | (labels or {})
    spec = study.spec(fidelity, seed)
    if not study.affordable(fidelity, with_check=False):
        return None  # checked before the run is recorded; a race with another worker is caught below
    run = study.kb.add_run(
        architecture.id, study.task.name, study_id=study.study_id, fidelity=fidelity, seed=seed,
        status="running", sandbox=study.sandbox.backend.name, started_at=datetime.now(UTC),
    )  # fmt: skip
    draw = f"-heldout{heldout_draw}" if heldout_draw else ""
    run_dir = study.folder / "runs" / architecture.name / f"{fidelity}-seed{seed}{draw}"
    vetted = candidate or vet_architecture(study, architecture)
    try:
        charged = study.jobs.run(
            run.id, run_key(study.task.name, fidelity), spec.steps,
            lambda slot: study.sandbox.train(
                vetted, spec, slot.device, run_dir=run_dir, job_id=run.id, deadline=slot.deadline,
                heldout_draw=heldout_draw,
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
        return study.kb.update_run(run.id, status="failed", failure_reason=reason, result=marks, **ended)
    result = charged.value
    assert result is not None
    reference = study.reference(fidelity, seed)  # None while the study's baselines are being trained
    fitness = study.score(result, reference[1]).value if reference else None
    status = "succeeded" if result.status == "ok" else "failed"
    reason = None if status == "succeeded" else "training diverged (non-finite loss or metric)"
    recorded = result.model_dump() | ({"lost_attempts": charged.lost} if charged.lost else {}) | marks
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


def finished_runs(
    study: StudyContext, architecture: Architecture, seeds: list[int], heldout_draw: int = 0
) -> dict[int, Run]:
    """The architecture's full-fidelity runs on `seeds` and held-out draw that ended (succeeded or
    failed), by seed."""
    return {
        run.seed: run
        for arch, run in study.kb.study_runs(study.study_id, fidelity="full")
        if arch.id == architecture.id
        and run.seed in seeds
        and run.status in ("succeeded", "failed")
        and run.result.get("heldout_draw", 0) == heldout_draw
    }


def seed_runs(runs: dict[int, Run]) -> claims.SeedRuns:
    values = {seed: run.result["value"] for seed, run in runs.items() if run.status == "succeeded"}
    failures = {seed: run.failure_reason or run.status for seed, run in runs.items() if seed not in values}
    return claims.SeedRuns(values, failures)


def baseline_at_full_fidelity(
    study: StudyContext,
    baseline: Architecture,
    seeds: list[int],
    heldout_draw: int = 0,
    labels: dict[str, Any] | None = None,
) -> claims.SeedRuns:
    """The baseline's full-fidelity runs on `seeds` and held-out draw, each trained once per study
    (under the study's lock, so two verifications at once do not train it twice)."""
    with study.lock:
        done = finished_runs(study, baseline, seeds, heldout_draw)
        candidate = None  # vetted once, for all its seeds
        for seed in seeds:
            if seed not in done:
                candidate = candidate or vet_architecture(study, baseline)
                run = train_and_record(study, baseline, "full", seed, candidate, heldout_draw, labels)
                if run is None:
                    break
                done[seed] = run
        return seed_runs(done)
