"""What the experiment graph's nodes work with: the study's store, sandbox, devices and budget.

Every sandbox job of a study goes through `Lab.job`: it waits for a device slot, reserves the
job's estimated cost in the ledger (or refuses, when the budget cannot cover it), runs, and is
charged exactly the wall time it held the slot. A job lost with its machine (a Ray worker node that
died) is released, not charged, and tried once more. The ledger's job id is the knowledge base's run id
for training jobs, so the two records can be checked against each other.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from discover.agents.config import StudyConfig
from discover.agents.llm import LLM
from discover.agents.proposers import Proposer
from discover.experiments.harness import TrainResult
from discover.experiments.scoring import Fitness, fitness
from discover.experiments.tasks import get_task
from discover.knowledge_base.schema import Architecture
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.base import JobOutcome
from discover.sandbox.budget import CostEstimator, Ledger
from discover.sandbox.pool import DevicePool
from discover.sandbox.runner import JobFailed, Sandbox

T = TypeVar("T")
CHECK_KEY = "check"
SECONDS_PER_STEP_GUESS = {"cpu": 0.1, "cuda": 0.03}  # first estimate, before any job was measured
START_UP_GUESS_S = 15.0
INFRASTRUCTURE_RETRIES = 1  # a job whose machine died is tried this many more times


@dataclass(frozen=True)
class Charged(Generic[T]):
    """A budgeted job's value (None when it failed), its failure, and the device-seconds charged."""

    value: T | None
    failure: JobOutcome | None
    cost: float
    lost: list[str] = field(default_factory=list)  # attempts lost with their machine, not charged


def candidate_file(folder: Path, architecture: Architecture) -> Path:
    """The architecture's code as a file in the study's candidates/ folder (written on first use)."""
    path = folder / "candidates" / f"{architecture.name}.py"
    if not path.exists() or path.read_text() != architecture.code:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(architecture.code)
    return path


class OutOfBudget(Exception):
    """The ledger cannot cover the job's estimated cost."""


class Paused(Exception):
    """The study is stopping (Ctrl-C): no new job starts. The experiment stays at its last finished
    node, and `discover run --resume` continues it."""


@dataclass
class Lab:
    config: StudyConfig
    study_id: str
    folder: Path
    kb: KnowledgeBase
    sandbox: Sandbox
    ledger: Ledger
    estimator: CostEstimator
    pool: DevicePool
    proposer: Proposer | None = None  # an offline proposer; None when the llm proposes
    llm: LLM | None = None
    on_record: Callable[[str, dict], None] = lambda experiment_id, state: None  # progress display
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one-off study work (baseline runs)

    @property
    def task(self) -> str:
        return self.config.task

    def settings(self, fidelity: str) -> dict:
        """Task settings of a run at this fidelity ("screen" or "full")."""
        if fidelity == "screen":
            return self.config.settings | self.config.screen.settings
        return dict(self.config.settings)

    def candidate_file(self, architecture: Architecture) -> Path:
        return candidate_file(self.folder, architecture)

    def job(self, job_id: str, key: str, steps: int, run: Callable[[str], T]) -> Charged[T]:
        """Run `run(device)` as one budgeted job: lease a slot, reserve, run, charge the wall time.
        A job that fails in the sandbox is charged too and comes back with its failure; a job the
        budget cannot cover raises OutOfBudget and costs nothing."""
        if self.stopping.is_set():
            raise Paused(job_id)
        with self.pool.lease() as lease:
            default = steps * SECONDS_PER_STEP_GUESS[lease.kind] + START_UP_GUESS_S
            device = lease.devices[0] if lease.kind == "cuda" else "cpu"
            lost: list[str] = []
            while True:
                if not self.ledger.reserve(job_id, self.estimator.estimate(key, default), key):
                    raise OutOfBudget(f"{self.ledger.left:.0f} device-seconds left do not cover job {job_id}")
                started = time.perf_counter()
                value, failure, settled = None, None, False
                try:
                    value = run(device)
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

    def affordable(self, fidelity: str = "screen", with_check: bool = True) -> bool:
        """Whether the budget left covers one more run at this fidelity (and a check job before it)."""
        steps = get_task(self.task).config(self.settings(fidelity)).steps
        default = steps * SECONDS_PER_STEP_GUESS[self.pool.kind] + START_UP_GUESS_S
        needed = self.estimator.estimate(run_key(self.task, fidelity), default)
        if with_check:
            needed += self.estimator.estimate(CHECK_KEY, START_UP_GUESS_S)
        return self.ledger.left >= needed

    def reference(self, fidelity: str, seed: int | None = None) -> tuple[str, TrainResult] | None:
        """The best baseline's run at this fidelity (on this seed, where it has one): what fitness
        is measured against. None before any baseline has been trained."""
        runs = [
            (architecture.name, TrainResult.model_validate(run.result), run.seed)
            for architecture, run in self.kb.study_runs(self.study_id, fidelity)
            if architecture.origin == "baseline" and run.status == "succeeded"
        ]
        if seed is not None and any(run_seed == seed for _, _, run_seed in runs):
            runs = [run for run in runs if run[2] == seed]
        best = None
        for name, result, _ in runs:
            if best is None or self.better(result.value, best[1].value):
                best = (name, result)
        return best

    def report(self, experiment_id: str, state: dict) -> None:
        self.on_record(experiment_id, state)

    def score(self, result: TrainResult, reference: TrainResult, judge_score: float | None = None) -> Fitness:
        task = get_task(self.task)
        return fitness(result, reference, task, self.config.scoring, judge_score)

    def better(self, a: float, b: float) -> bool:
        """Whether metric value a is better than b on this task."""
        if not math.isfinite(a):
            return False
        if not math.isfinite(b):
            return True
        return a > b if get_task(self.task).higher_is_better else a < b


def run_key(task: str, fidelity: str) -> str:
    """The cost estimator's key for a training run: jobs with the same key cost about the same."""
    return f"{task}/{fidelity}"
