"""The loop every budgeted job goes through: wait for a device slot, reserve the job's allowance
in the ledger (or refuse, when the budget cannot cover its estimated cost), run it with a deadline
the allowance sets, and charge exactly the wall time it held the slot times the devices it held.

The allowance is the job's estimate plus an equal share (one per device slot) of the rest of the
budget, and every sandbox job the run starts is limited to end by the deadline. Reservations never
exceed the budget, so what is charged never exceeds it by more than the moments a job takes to be
stopped: the budget is a ceiling, not a target. A job lost with its machine (a Ray worker node
that died) is released, not charged, and tried again. A study's ledger job id is the knowledge
base's run id for training jobs, so the two records can be checked against each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from discover.budget.estimate import CostEstimator
from discover.budget.ledger import Ledger
from discover.sandbox.base import JobOutcome
from discover.sandbox.pool import DevicePool
from discover.sandbox.runner import JobFailed

T = TypeVar("T")
CHECK_KEY = "check"  # the estimator's key for check (probe) jobs
SECONDS_PER_STEP_GUESS = {"cpu": 0.1, "cuda": 0.03}  # first estimate, before any job was measured
START_UP_GUESS_S = 15.0
INFRASTRUCTURE_RETRIES = 1  # a job whose machine died is tried this many more times


def run_key(task: str, fidelity: str) -> str:
    """The cost estimator's key for a training run: jobs with the same key cost about the same."""
    return f"{task}/{fidelity}"


def first_guess(steps: int, kind: str) -> float:
    """Device-seconds of a job of `steps` training steps on a `kind` device, before any was measured."""
    return steps * SECONDS_PER_STEP_GUESS[kind] + START_UP_GUESS_S


class OutOfBudget(Exception):
    """The ledger cannot cover the job's estimated cost."""


class Paused(Exception):
    """The study is stopping (Ctrl-C): no new job starts. The experiment stays at its last finished
    node, and `discover run --resume` continues it."""


@dataclass(frozen=True)
class Slot:
    """Where and until when a budgeted job may run."""

    device: str  # "cpu" or "cuda:N"
    deadline: float  # time.monotonic() by which it must have ended: its allowance is spent then


@dataclass(frozen=True)
class Charged(Generic[T]):
    """A budgeted job's value (None when it failed), its failure, and the device-seconds charged."""

    value: T | None
    failure: JobOutcome | None
    cost: float
    lost: list[str] = field(default_factory=list)  # attempts lost with their machine, not charged


@dataclass
class BudgetedJobs:
    """Runs jobs against one ledger, on one device pool, learning their costs as it goes."""

    ledger: Ledger
    estimator: CostEstimator
    pool: DevicePool
    stopping: threading.Event = field(default_factory=threading.Event)  # set: start no new job

    def run(self, job_id: str, key: str, steps: int, fn: Callable[[Slot], T]) -> Charged[T]:
        """Run `fn(slot)` as one budgeted job: lease a slot, reserve, run, charge the wall time.
        A job that fails in the sandbox is charged too and comes back with its failure (one stopped
        at its deadline fails as a timeout); a job the budget cannot cover raises OutOfBudget and
        costs nothing; once `stopping` is set, Paused."""
        if self.stopping.is_set():
            raise Paused(job_id)
        with self.pool.lease() as lease:
            default = first_guess(steps, lease.kind)
            device = lease.devices[0] if lease.kind == "cuda" else "cpu"
            lost: list[str] = []
            while True:
                estimate = self.estimator.estimate(key, default)
                allowance = self.ledger.reserve_allowance(job_id, estimate, key, share=1 / self.pool.total)
                if not allowance:
                    raise OutOfBudget(f"{self.ledger.left:.0f} device-seconds left do not cover job {job_id}")
                started = time.perf_counter()
                deadline = time.monotonic() + allowance / len(lease.devices)
                value, failure, settled = None, None, False
                try:
                    value = fn(Slot(device, deadline))
                except JobFailed as exc:
                    failure = exc.outcome
                    if failure.status == "lost":  # the machine died, not the job: not the study's cost
                        self.ledger.release(job_id)
                        settled = True
                        lost.append(failure.reason)
                        if len(lost) <= INFRASTRUCTURE_RETRIES:
                            continue
                        return Charged(None, failure, 0.0, lost)
                finally:
                    if not settled:
                        seconds = time.perf_counter() - started
                        cost = self.ledger.charge(job_id, seconds, devices=len(lease.devices))
                        self.estimator.observe(key, cost)
                return Charged(value, failure, cost, lost)

    def affordable(self, jobs: list[tuple[str, int]], with_check: bool = True) -> bool:
        """Whether the budget left covers these jobs, each a (key, training steps) pair (and a check
        job before them), by the same estimates `run` would reserve."""
        kind = self.pool.kind
        needed = sum(self.estimator.estimate(key, first_guess(steps, kind)) for key, steps in jobs)
        if with_check:
            needed += self.estimator.estimate(CHECK_KEY, START_UP_GUESS_S)
        return self.ledger.left >= needed
