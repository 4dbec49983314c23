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
from discover.experiments.suite import Suite, SuiteSpec, layered, resolve_suite, result_from
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


def fidelity_specs(config: StudyConfig) -> dict[str, SuiteSpec]:
    """The study's run at each fidelity, cheapest first, on every task of its suite: "screen" (each
    task's screening settings, then `[screen] settings`, over the tasks' settings), the ladder's
    rungs (their settings over the tasks'), and "full" (the tasks' settings: where claims are
    tested). Raises TaskConfigError for an unknown task or a bad setting."""
    suite = resolve_suite(config.task, config.suites)
    specs = {"screen": SuiteSpec.resolve(suite, config.settings, config.seed, screen=config.screen.settings)}
    for rung in config.ladder:
        specs[rung.name] = SuiteSpec.resolve(suite, layered(config.settings, rung.settings), config.seed)
    specs["full"] = SuiteSpec.resolve(suite, config.settings, config.seed)
    return specs


@dataclass
class StudyContext:
    config: StudyConfig
    study_id: str
    folder: Path
    kb: KnowledgeBase
    sandbox: Sandbox
    jobs: BudgetedJobs  # the study's ledger, cost estimates and device pool
    proposer: Proposer  # what the study tries next (`discover.agents.proposers`)
    specs: dict[str, SuiteSpec]  # fidelity -> the study's run at it (`fidelity_specs`)
    on_record: Callable[[str, dict], None] = lambda experiment_id, state: None  # progress display
    lock: threading.Lock = field(default_factory=threading.Lock)  # one-off study work (baseline runs)

    @property
    def task(self) -> Suite:
        """What designs are scored on: the study's task, or its suite of tasks."""
        return self.specs["full"].suite

    @property
    def rungs(self) -> list[str]:
        """The ladder's rungs between the screen and full fidelity, cheapest first."""
        return [fidelity for fidelity in self.specs if fidelity not in ("screen", "full")]

    def spec(self, fidelity: str, seed: int | None = None) -> SuiteSpec:
        """The study's run at this fidelity ("screen", a rung, "full"), on `seed` (default: the study's)."""
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
        jobs = [(run_key(part.task.name, fidelity), part.steps) for part in self.specs[fidelity].parts]
        return self.jobs.affordable(jobs * runs, with_check)

    def reference(self, fidelity: str, seed: int | None = None) -> tuple[str, TrainResult] | None:
        """The best baseline's run at this fidelity (on this seed, where it has one): what fitness
        is measured against. None before any baseline has been trained."""
        runs = [
            (architecture.name, result_from(run.result), run.seed)
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
