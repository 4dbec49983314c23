"""The study loop: experiments on `workers` threads while the budget covers another, each one run
of the experiment graph, checkpointed so that `--resume` continues it where it stopped.

It stops starting new experiments on Ctrl-C (the running ones finish), when the proposer runs dry
or the LLM dollar cap is reached, after a few experiments in a row broken by discover itself, after
`max_idle_experiments` in a row that gave nothing to train (a proposer out of ideas repeats
itself, and duplicates cost no device time, so the budget alone would never stop it), at
`--max-experiments`, or when the budget left cannot cover another experiment.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from langgraph.checkpoint.sqlite import SqliteSaver

from discover.agents.context import StudyContext
from discover.agents.graph import ExperimentState
from discover.agents.interrupts import wait_interruptibly
from discover.agents.leaderboard import leaderboard, leaderboard_markdown
from discover.agents.proposers.llm import CURRENT_EXPERIMENT
from discover.budget.jobs import Paused
from discover.experiments.files import write_atomic

MAX_INTERNAL_ERRORS = 3  # consecutive experiments broken by discover itself before the study stops
IDLE_ENDINGS = frozenset({"duplicate", "no_proposal", "no_code", "rejected"})  # nothing was trained
Say = Callable[[str], None]


@dataclass
class Outcome:
    """How a `discover run` ended."""

    stopped_because: str
    endings: Counter[str] = field(default_factory=Counter)
    spent_s: float = 0.0
    budget_s: float = 0.0
    leaderboard: list[dict] = field(default_factory=list)
    rank_correlation: float | None = None
    signal: int | None = None  # the signal that stopped it, if one did


class StudyLoop:
    def __init__(
        self, study: StudyContext, graph, saver: SqliteSaver, max_experiments: int | None, say: Say
    ) -> None:
        self.study, self.graph, self.saver, self.say = study, graph, saver, say
        self.max_experiments = max_experiments
        self.outcome = Outcome(stopped_because="")
        self.admit_lock = threading.Lock()
        self.started = 0
        self.internal_errors = 0
        self.idle = 0  # experiments in a row that ended in IDLE_ENDINGS
        self.exhausted = False
        self.llm_capped = False
        study.on_record = self.on_record

    def run(self) -> Outcome:
        """Unfinished experiments first, then new ones on `workers` threads, then the leaderboard.
        The caller handles signals (`interrupts`), which set the study's `stopping`."""
        study = self.study
        unfinished = self.unfinished()
        if unfinished:
            self.say(f"resuming {len(unfinished)} unfinished experiment(s): {', '.join(unfinished)}")
        workers = study.config.workers
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="experiment") as pool:
            wait_interruptibly([pool.submit(self.resume_one, thread) for thread in unfinished])
            wait_interruptibly([pool.submit(self.work) for _ in range(workers)])
        return self.finish()

    # -- experiments

    def work(self) -> None:
        while (number := self.admit()) is not None:
            experiment_id = f"e{number:05d}"
            self.invoke({"experiment_id": experiment_id, "number": number}, experiment_id)

    def resume_one(self, thread_id: str) -> None:
        self.invoke(None, thread_id)

    def invoke(self, state: ExperimentState | None, thread_id: str) -> None:
        token = CURRENT_EXPERIMENT.set(thread_id)
        try:
            self.run_graph(state, thread_id)
        finally:
            CURRENT_EXPERIMENT.reset(token)

    def run_graph(self, state: ExperimentState | None, thread_id: str) -> None:
        try:
            final = self.graph.invoke(state, {"configurable": {"thread_id": thread_id}})
        except Paused:
            self.say(f"{thread_id}: paused before its next job; --resume continues it")
            return
        except Exception as exc:  # discover's own bug or a broken store: keep the study going, a few times
            error = f"{type(exc).__name__}: {exc}"
            self.say(f"{thread_id}: stopped by an internal error ({error}); --resume retries it")
            with self.admit_lock:
                self.internal_errors += 1
            return
        with self.admit_lock:
            self.internal_errors = 0
            self.idle = self.idle + 1 if final.get("status") in IDLE_ENDINGS else 0
            if final.get("status") == "exhausted":
                self.exhausted = True
            if final.get("status") == "llm_cap":
                self.llm_capped = True

    def admit(self) -> int | None:
        """The next experiment's number, or None when the study should stop starting new ones."""
        with self.admit_lock:
            why = None
            if self.study.stopping.is_set():
                why = "interrupted"
            elif self.exhausted:
                why = "the proposer found no untried design"
            elif self.llm_capped:
                why = "the LLM dollar cap is reached"
            elif self.internal_errors >= MAX_INTERNAL_ERRORS:
                why = f"{MAX_INTERNAL_ERRORS} experiments in a row failed inside discover"
            elif self.idle >= (limit := self.study.config.max_idle_experiments):
                why = (
                    f"{limit} experiments in a row gave nothing to train (duplicates, designs that failed "
                    "their probes, or no usable answer): the proposer looks out of ideas "
                    "(max_idle_experiments sets how many)"
                )
            elif self.max_experiments is not None and self.started >= self.max_experiments:
                why = f"{self.max_experiments} experiment(s) run"
            elif not self.study.affordable():
                why = "the budget is spent"
            if why is not None:
                self.outcome.stopped_because = self.outcome.stopped_because or why
                return None
            self.started += 1
            return self.next_number()

    def next_number(self) -> int:
        return 1 + max((int(thread[1:]) for thread in self.threads()), default=0)

    def threads(self) -> set[str]:
        return {checkpoint.config["configurable"]["thread_id"] for checkpoint in self.saver.list(None)}

    def unfinished(self) -> list[str]:
        return sorted(
            thread
            for thread in self.threads()
            if self.graph.get_state({"configurable": {"thread_id": thread}}).next
        )

    def on_record(self, experiment_id: str, state: dict) -> None:
        status = state.get("status", "failed")
        self.outcome.endings[status] += 1
        name = state.get("proposal", {}).get("name", "-")
        detail = (
            f"fitness {state['fitness']:.3f}" if state.get("fitness") is not None else state.get("reason", "")
        )
        verification = state.get("verification")
        if verification and verification.get("beats_baseline"):
            detail += f"; beats {verification['baseline']} at full fidelity"
        left = self.study.ledger.left
        self.say(f"{experiment_id} {name}: {status} ({detail[:160]}) [{left / 60:.1f} device-min left]")

    # -- the end

    def finish(self, stopped_because: str = "") -> Outcome:
        study = self.study
        self.outcome.stopped_because = stopped_because or self.outcome.stopped_because or "done"
        self.outcome.spent_s = study.ledger.spent
        self.outcome.budget_s = study.ledger.total.device_seconds
        self.outcome.leaderboard, self.outcome.rank_correlation = leaderboard(
            study.kb, study.study_id, study.task.higher_is_better
        )
        heading = f"Stopped because {self.outcome.stopped_because}. Proposer: {study.config.proposer}."
        text = leaderboard_markdown(
            f"{study.config.name}: leaderboard on {study.task.name}", heading, self.outcome.spent_s,
            self.outcome.budget_s, self.outcome.leaderboard, self.outcome.rank_correlation,
        )  # fmt: skip
        write_atomic(study.folder / "leaderboard.md", text)
        return self.outcome
