"""`discover reproduce`: train one recorded result again from what the knowledge base kept (the
code, checked against its hash; the task settings, seed and held-out seed; the sandbox) and
compare. What cannot be the same (library versions, the task's data) is reported beside the result,
so a difference comes with its likely cause.

A reproduction is not charged to the study's budget: it checks a result rather than searching,
and its device time is reported instead."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel
from sqlmodel import select

from discover.agents.compose import choose_sandbox, study_sandbox
from discover.agents.config import StudyConfig, load_config
from discover.agents.context import candidate_file, fidelity_specs
from discover.agents.record import StudyError, StudyRecord
from discover.agents.runs import trusted
from discover.agents.status import open_study
from discover.experiments.contract import code_hash
from discover.experiments.harness import TrainResult, versions
from discover.experiments.runspec import RunSpec
from discover.experiments.suite import SuiteResult, SuiteSpec, resolve_suite, result_from
from discover.experiments.tasks import Task, TaskConfigError, get_task
from discover.knowledge_base.schema import Architecture, Run
from discover.sandbox.runner import JobFailed
from discover.vetting.candidate import vet


class Reproduction(BaseModel):
    run_id: str
    design: str
    fidelity: str
    seed: int
    metric: str
    recorded: float
    reproduced: float
    difference: float  # reproduced - recorded
    recorded_loss: float
    reproduced_loss: float
    params_match: bool
    verdict: str  # "identical", "within tolerance" or "differs"
    tolerance: float
    warnings: list[str]  # what differs between then and now besides the run itself
    device_seconds: float
    run_dir: str


def find_run(folder: Path, reference: str) -> tuple[StudyRecord, Architecture, Run]:
    """A run by id (or a unique id prefix), or a design by name or id: its best screening run."""
    record, kb = open_study(folder)
    with kb, kb.reading() as session:
        runs = session.exec(select(Run).where(Run.study_id == record.study_id)).all()
        by_id = [run for run in runs if run.id.startswith(reference)] if len(reference) >= 6 else []
        if len(by_id) > 1:
            raise StudyError(f"{reference!r} is the start of {len(by_id)} run ids; give more of it")
        if not by_id:
            architecture = kb.find_design(record.study_id, reference)
            if architecture is None:
                raise StudyError(f"no run or design {reference!r} in this study; see `discover status`")
            screened = [
                run
                for run in runs
                if run.architecture_id == architecture.id
                and run.fidelity == "screen"
                and run.status == "succeeded"
            ]
            if not screened:
                raise StudyError(f"{architecture.name} has no successful screening run to reproduce")
            by_id = [max(screened, key=lambda run: run.fitness or 0.0)]
        run = by_id[0]
        if run.status != "succeeded":
            raise StudyError(f"run {run.id} {run.status}; only a succeeded run has a result to reproduce")
        architecture = session.get(Architecture, run.architecture_id)
        assert architecture is not None
        return record, architecture, run


def reproduce(folder: Path, reference: str, sandbox: str | None, tolerance: float = 1e-4) -> Reproduction:
    """Train the run again in `sandbox` (default: the one it ran in, here rather than on a cluster)."""
    record, architecture, run = find_run(folder, reference)
    recorded_in = (run.sandbox or "auto").removeprefix("ray+")
    backend = choose_sandbox(sandbox or recorded_in).backend
    if code_hash(architecture.code) != architecture.code_hash:
        raise StudyError(f"{architecture.name}'s stored code no longer matches its recorded hash")
    recorded = result_from(run.result)
    config = load_config(folder)
    warnings = []
    now = versions()
    for library, version in recorded.versions.items():
        if now.get(library) != version:
            warnings.append(f"{library} was {version}, is {now.get(library)}")
    parts = recorded.parts if isinstance(recorded, SuiteResult) else {run.task: recorded}
    specs = [recorded_spec(get_task(name), part, config, run, warnings) for name, part in parts.items()]
    spec = SuiteSpec(resolve_suite(run.task, config.suites), tuple(specs), run.seed)
    if run.sandbox and run.sandbox.removeprefix("ray+") != backend.name:
        warnings.append(f"trained in the {run.sandbox} sandbox, reproduced in {backend.name}")

    candidate = vet(candidate_file(folder, architecture), trusted(architecture))
    pool = backend.pool(cpu_slots=config.workers or 1)  # the study's thread share, for equal sums
    sandbox = study_sandbox(folder, config, backend, record, pool)
    run_dir = folder / "runs" / architecture.name / f"reproduce-{run.fidelity}-seed{run.seed}"
    started = time.monotonic()
    with pool.lease() as lease:
        device = lease.devices[0] if lease.kind == "cuda" else "cpu"
        try:
            result = spec.combine({
                part.task.name: sandbox.train(
                    candidate, part, device, run_dir=run_dir / part.task.name if len(specs) > 1 else run_dir,
                    job_id=f"reproduce-{run.id[:12]}-{part.task.name}",
                    heldout_draw=run.result.get("heldout_draw", 0),
                )
                for part in specs
            })  # fmt: skip
        except JobFailed as exc:
            raise StudyError(f"the reproduction failed: {exc}") from exc
    difference = result.value - recorded.value
    verdict = "within tolerance" if abs(difference) <= tolerance else "differs"
    verdict = "identical" if difference == 0 else verdict
    return Reproduction(
        run_id=run.id, design=architecture.name, fidelity=run.fidelity, seed=run.seed, metric=recorded.metric,
        recorded=recorded.value, reproduced=result.value, difference=difference,
        recorded_loss=recorded.final_train_loss, reproduced_loss=result.final_train_loss,
        params_match=result.params == recorded.params, verdict=verdict, tolerance=tolerance,
        warnings=warnings, device_seconds=(time.monotonic() - started) * len(lease.devices),
        run_dir=str(run_dir.resolve()),
    )  # fmt: skip


def recorded_spec(
    task: Task, recorded: TrainResult, config: StudyConfig, run: Run, warnings: list[str]
) -> RunSpec:
    """The run of `task` that produced `recorded`, resolved again (and a warning when its data changed).
    The recorded config lists every field, but a field the run never set (the held-out seed, say)
    must stay unset so the task makes the same choice; keep what the study set or what differs."""
    try:
        study_run = fidelity_specs(config).get(run.fidelity)
    except TaskConfigError:  # discover.toml changed since: the recorded config alone decides
        study_run = None
    parts = study_run.parts if study_run else ()
    given = next((part.settings for part in parts if part.task.name == task.name), {})
    defaults = task.config({}).model_dump()
    settings = {
        key: value for key, value in recorded.config.items() if key in given or defaults.get(key) != value
    }
    spec = RunSpec.resolve(task, settings, run.seed)
    task.prepare(spec.config)
    if (data_version := task.data_version(spec.config)) != recorded.data_version:
        warnings.append(f"{task.name}'s data was {recorded.data_version}, is {data_version}")
    return spec
