"""What the experiment graph's nodes work with: the study's task and its run at each fidelity
(resolved once), store, sandbox, budgeted jobs and proposer.

Every sandbox job of a study goes through `StudyContext.jobs` (`discover.budget.jobs.BudgetedJobs`): it
waits for a device slot, reserves the job's estimated cost in the ledger (or refuses, when the budget
cannot cover it), runs, and is charged exactly the wall time it held the slot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from discover.agents.config import StudyConfig
from discover.agents.proposers.base import Proposer
from discover.budget.jobs import BudgetedJobs, run_key
from discover.budget.ledger import Ledger
from discover.experiments.harness import TrainResult
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import Task
from discover.knowledge_base.schema import Architecture
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.runner import Sandbox
from discover.vetting.scoring import Fitness, fitness


def candidate_file(folder: Path, architecture: Architecture) -> Path:
    """The architecture's code as a file in the study's candidates/ folder (written on first use)."""
    path = folder / "candidates" / f"{architecture.name}.py"
    if not path.exists() or path.read_text() != architecture.code:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(architecture.code)
    return path


def fidelity_specs(config: StudyConfig) -> dict[str, RunSpec]:
    """The study's run at each fidelity: "full" is the task's settings, "screen" the cheap run
    (`[screen] settings` over them). Raises TaskConfigError for a bad setting."""
    return {
        "screen": RunSpec.resolve(config.task, config.settings | config.screen.settings, config.seed),
        "full": RunSpec.resolve(config.task, config.settings, config.seed),
    }


@dataclass
class StudyContext:
    config: StudyConfig
    study_id: str
    folder: Path
    kb: KnowledgeBase
    sandbox: Sandbox
    jobs: BudgetedJobs  # the study's ledger, cost estimates and device pool
    proposer: Proposer  # what the study tries next (`discover.agents.proposers`)
    specs: dict[str, RunSpec]  # fidelity -> the study's run at it (`fidelity_specs`)
    on_record: Callable[[str, dict], None] = lambda experiment_id, state: None  # progress display
    lock: threading.Lock = field(default_factory=threading.Lock)  # one-off study work (baseline runs)

    @property
    def task(self) -> Task:
        return self.specs["full"].task

    def spec(self, fidelity: str, seed: int | None = None) -> RunSpec:
        """The study's run at this fidelity ("screen" or "full"), on `seed` (default: the study's)."""
        return self.specs[fidelity] if seed is None else self.specs[fidelity].with_seed(seed)

    @property
    def ledger(self) -> Ledger:
        return self.jobs.ledger

    @property
    def stopping(self) -> threading.Event:
        """Set on Ctrl-C: no new job starts."""
        return self.jobs.stopping

    def candidate_file(self, architecture: Architecture) -> Path:
        return candidate_file(self.folder, architecture)

    def affordable(self, fidelity: str = "screen", with_check: bool = True, runs: int = 1) -> bool:
        """Whether the budget left covers `runs` more runs at this fidelity (and a check job before)."""
        key, steps = run_key(self.task.name, fidelity), self.specs[fidelity].steps
        return self.jobs.affordable(key, steps, with_check, runs)

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
            if best is None or self.task.better(result.value, best[1].value):
                best = (name, result)
        return best

    def report(self, experiment_id: str, state: dict) -> None:
        self.on_record(experiment_id, state)

    def score(self, result: TrainResult, reference: TrainResult, judge_score: float | None = None) -> Fitness:
        return fitness(result, reference, self.task, self.config.scoring, judge_score)
