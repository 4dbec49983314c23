"""A study's jobs on one design: its check job, and its training runs (budgeted, recorded in the
knowledge base from start to end), at a fidelity, seed and held-out draw; the baselines' runs that
verifications and replications compare against."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discover.agents import claims
from discover.agents.context import StudyContext
from discover.agents.proposers import trusted_origins
from discover.budget.jobs import CHECK_KEY, Charged, OutOfBudget, Paused, run_key
from discover.experiments.harness import TrainResult
from discover.experiments.probes import Verdict
from discover.experiments.runspec import RunSpec
from discover.experiments.suite import SuiteSpec
from discover.knowledge_base.schema import Architecture, Run
from discover.vetting.candidate import VettedCandidate, vet
from discover.vetting.trust import is_trusted


def check_job(study: StudyContext, candidate: VettedCandidate, job_id: str) -> Charged[Verdict]:
    """The candidate's probes as one budgeted job; OutOfBudget or Paused as `BudgetedJobs.run`."""
    return study.jobs.run(
        job_id,
        CHECK_KEY,
        0,
        # The probes test the mixer, whatever the task: on a suite, on its first task.
        lambda slot: study.sandbox.check(candidate, study.spec("screen").parts[0], job_id, slot.deadline),
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
        charged = train_parts(study, spec, fidelity, vetted, run.id, run_dir, heldout_draw)
    except OutOfBudget:
        study.kb.update_run(
            run.id, status="rejected", failure_reason="not run: the budget could not cover it"
        )
        return None
    except Paused:
        study.kb.update_run(run.id, status="rejected", failure_reason="not run: the study was stopping")
        raise
    cost = sum(part.cost for part in charged.values())
    ended = {"ended_at": datetime.now(UTC), "cost_device_seconds": cost, "metrics_path": str(run_dir)}
    lost = [attempt for part in charged.values() for attempt in part.lost]
    for name, part in charged.items():
        if part.failure is not None:
            reason = part.failure.reason
            if part.failure.status == "lost":  # failed by the infrastructure, every attempt
                reason = f"infrastructure: {len(part.lost)} attempts lost with their machine; {reason}"
            if not study.task.single:
                reason = f"{name}: {reason}"
            return study.kb.update_run(run.id, status="failed", failure_reason=reason, result=marks, **ended)
    results = {name: part.value for name, part in charged.items()}
    assert all(value is not None for value in results.values())
    result = spec.combine(results)  # type: ignore[arg-type]
    reference = study.reference(fidelity, seed)  # None while the study's baselines are being trained
    fitness = study.score(result, reference[1]).value if reference else None
    status = "succeeded" if result.status == "ok" else "failed"
    reason = None if status == "succeeded" else "training diverged (non-finite loss or metric)"
    recorded = result.model_dump() | ({"lost_attempts": lost} if lost else {}) | marks
    return study.kb.update_run(
        run.id, status=status, result=recorded, fitness=fitness, failure_reason=reason, **ended
    )


def train_parts(
    study: StudyContext,
    spec: SuiteSpec,
    fidelity: str,
    candidate: VettedCandidate,
    run_id: str,
    run_dir: Path,
    heldout_draw: int,
) -> dict[str, Charged[TrainResult]]:
    """The run's training on every task of the study's suite, each its own budgeted job (the run's
    id for a single task, else the id and the task's name), in parallel as the device pool allows.
    OutOfBudget or Paused when any job raised it (after the others ended)."""

    def train_one(part: RunSpec) -> Charged[TrainResult]:
        job_id = run_id if study.task.single else f"{run_id}-{part.task.name}"
        folder = run_dir if study.task.single else run_dir / part.task.name
        return study.jobs.run(
            job_id, run_key(part.task.name, fidelity), part.steps,
            lambda slot: study.sandbox.train(
                candidate, part, slot.device, run_dir=folder, job_id=job_id, deadline=slot.deadline,
                heldout_draw=heldout_draw,
            ),
        )  # fmt: skip

    if study.task.single:
        return {spec.parts[0].task.name: train_one(spec.parts[0])}
    with ThreadPoolExecutor(max_workers=len(spec.parts), thread_name_prefix="suite-task") as pool:
        futures = {part.task.name: pool.submit(train_one, part) for part in spec.parts}
        wait(futures.values())
    return {name: future.result() for name, future in futures.items()}


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
    study: StudyContext,
    architecture: Architecture,
    seeds: list[int],
    heldout_draw: int = 0,
    fidelity: str = "full",
) -> dict[int, Run]:
    """The architecture's runs at `fidelity` on `seeds` and held-out draw that ended (succeeded or
    failed), by seed."""
    return {
        run.seed: run
        for arch, run in study.kb.study_runs(study.study_id, fidelity=fidelity)
        if arch.id == architecture.id
        and run.seed in seeds
        and run.status in ("succeeded", "failed")
        and run.result.get("heldout_draw", 0) == heldout_draw
    }


def seed_runs(runs: dict[int, Run]) -> claims.SeedRuns:
    values = {seed: run.result["value"] for seed, run in runs.items() if run.status == "succeeded"}
    failures = {seed: run.failure_reason or run.status for seed, run in runs.items() if seed not in values}
    return claims.SeedRuns(values, failures)


def baseline_runs(
    study: StudyContext,
    baseline: Architecture,
    seeds: list[int],
    heldout_draw: int = 0,
    labels: dict[str, Any] | None = None,
    fidelity: str = "full",
) -> claims.SeedRuns:
    """The baseline's runs at `fidelity` on `seeds` and held-out draw, each trained once per study
    (under the study's lock, so two verifications at once do not train it twice)."""
    with study.lock:
        done = finished_runs(study, baseline, seeds, heldout_draw, fidelity)
        candidate = None  # vetted once, for all its seeds
        for seed in seeds:
            if seed not in done:
                candidate = candidate or vet_architecture(study, baseline)
                run = train_and_record(study, baseline, fidelity, seed, candidate, heldout_draw, labels)
                if run is None:
                    break
                done[seed] = run
        return seed_runs(done)
