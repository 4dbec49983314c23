"""The composition root: the one place that turns a configuration into the objects a command works
with. `discover run` (`compose_study`), `check`/`train` and `baseline add` (`choose_sandbox`,
`adhoc_sandbox`) and `reproduce` (`study_sandbox`) build their sandboxes, pools, budgets and
proposers here and nowhere else, so a new backend, proposer or limit reaches every command at once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from discover.agents.config import StudyConfig
from discover.agents.context import StudyContext, fidelity_specs
from discover.agents.proposers import PROPOSERS
from discover.agents.proposers.base import Proposer, ProposerSetup
from discover.agents.record import StudyError, StudyRecord
from discover.budget.estimate import CostEstimator
from discover.budget.jobs import BudgetedJobs, run_key
from discover.budget.ledger import Ledger
from discover.budget.store import DatabaseLedgerStore
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.backends import OFFLINE_IMAGE, isolating
from discover.sandbox.base import Backend, Limits
from discover.sandbox.pool import DevicePool
from discover.sandbox.runner import Sandbox
from discover.sandbox.select import Choice, SandboxUnavailable, choose_backend


def choose_sandbox(
    name: str,
    untrusted: str | None = None,
    image: str | None = None,
    allow_untrusted_process: bool = False,
) -> Choice:
    """The backend `name` (or the strongest here, for "auto"). SandboxUnavailable when it cannot
    run here, or when it does not isolate and the code it must run is untrusted (`untrusted` says
    whose code, for the message)."""
    image = image or OFFLINE_IMAGE
    # The offline image borrows the host's Python; any other image brings its own.
    choice = choose_backend(name, image, image == OFFLINE_IMAGE, allow_untrusted_process)
    if untrusted and not choice.backend.isolates:
        raise SandboxUnavailable(
            f"{untrusted} is untrusted code, which needs --sandbox {' or '.join(isolating())}; {choice.why}"
        )
    return choice


def adhoc_sandbox(backend: Backend, limits: Limits, workdir: Path | None = None) -> Sandbox:
    """A sandbox for jobs outside any study (`check`, `train`, `baseline add`)."""
    return Sandbox(backend, workdir or Path(tempfile.gettempdir()), limits)


def job_limits(config: StudyConfig, pool: DevicePool) -> Limits:
    """The study's limits for one job; on a CPU host each of the `workers` concurrent jobs gets its
    share of the cores, since oversubscribed math threads stall."""
    if pool.kind != "cpu" or config.executor == "ray":  # Ray places jobs by their CPU requests
        return config.limits
    share = max(1.0, (os.cpu_count() or 1) // (config.workers or 1))
    return config.limits.model_copy(update={"cpus": min(config.limits.cpus, share)})


def study_sandbox(
    folder: Path, config: StudyConfig, backend: Backend, record: StudyRecord, pool: DevicePool
) -> Sandbox:
    """The sandbox a study's jobs run in: its jobs/ folder, limits and secret held-out seed."""
    limits = job_limits(config, pool)
    return Sandbox(backend, folder / "jobs", limits, record.study_id, heldout_seed=record.heldout_seed)


def make_proposer(config: StudyConfig, kb: KnowledgeBase, study_id: str, folder: Path) -> Proposer:
    proposer = PROPOSERS.get(config.proposer)
    return proposer.create(ProposerSetup(config.section(config.proposer), kb, study_id, folder))


def executor_backend(config: StudyConfig, backend: Backend) -> Backend:
    """The backend jobs run through: `backend` itself, or on a Ray cluster's nodes."""
    if config.executor != "ray":
        return backend
    from discover.sandbox.ray_backend import RayBackend

    try:
        return RayBackend(backend.name, config.ray_address)  # nodes run the offline image
    except SandboxUnavailable as exc:
        raise StudyError(str(exc)) from None


def compose_study(
    folder: Path, config: StudyConfig, backend: Backend, kb: KnowledgeBase, record: StudyRecord
) -> StudyContext:
    """Everything a study's experiments share, from its configuration and record."""
    ledger = Ledger(config.budget, DatabaseLedgerStore(kb, record.study_id))
    specs = fidelity_specs(config)
    parts = [(fidelity, part) for fidelity, spec in specs.items() for part in spec.parts]
    steps = {run_key(part.task.name, fidelity): part.steps for fidelity, part in parts}
    estimator = CostEstimator(default_seconds=60.0, steps=steps)
    estimator.observe_all(ledger.costs())  # a resumed study estimates from what its jobs cost
    backend = executor_backend(config, backend)
    pool = backend.pool(cpu_slots=config.workers or 1)
    # Concurrency follows the devices unless the user chose it: one experiment per GPU slot.
    workers = config.workers or (pool.total if pool.kind == "cuda" else 1)
    config = config.model_copy(update={"workers": workers})
    return StudyContext(
        config=config, study_id=record.study_id, folder=folder, kb=kb,
        sandbox=study_sandbox(folder, config, backend, record, pool),
        jobs=BudgetedJobs(ledger, estimator, pool),
        proposer=make_proposer(config, kb, record.study_id, folder),
        specs=specs,
    )  # fmt: skip
