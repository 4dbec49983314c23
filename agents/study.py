"""The study runner behind `discover run`: experiments until the budget is spent, then a leaderboard.

A study lives in one folder:

    discover.toml       the configuration (`discover init` writes a documented one)
    study.json          the study's id and secret held-out seed (created on the first run)
    knowledge.db        every architecture, run, finding and ledger entry (SQLite)
    checkpoints.db      the experiment graph's checkpoints, for --resume
    candidates/         every proposed candidate file
    runs/               metrics.jsonl and result.json of every training run
    jobs/               the sandbox jobs' folders
    leaderboard.md      written when the study stops

Order of work: settle what a crash left behind (resume), train the baselines at screening fidelity,
finish unfinished experiments, then start new ones on `workers` threads while the budget covers
another, stopping early on Ctrl-C (the running experiments finish) or when the proposer runs dry.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver
from sqlmodel import select

from discover.agents.config import CONFIG_FILE, StudyConfig, default_config_text
from discover.agents.graph import ExperimentState, build_graph, train
from discover.agents.lab import Lab, Paused
from discover.agents.leaderboard import leaderboard, leaderboard_markdown
from discover.agents.llm import LLM, CallRecord
from discover.agents.proposers import make_proposer
from discover.agents.record import RECORD_FILE, StudyError, StudyRecord, open_knowledge_base
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import TrainResult
from discover.knowledge_base.ledger import DatabaseLedgerStore
from discover.knowledge_base.schema import Architecture, Baseline, LLMCall, Run, Study
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox import quota
from discover.sandbox.base import Backend, Limits
from discover.sandbox.budget import CostEstimator, Ledger, parse_budget
from discover.sandbox.pool import DevicePool
from discover.sandbox.runner import Sandbox
from discover.sandbox.select import SandboxUnavailable

# The experiment whose graph this thread is running: LLM calls are recorded against it.
CURRENT_EXPERIMENT: ContextVar[str | None] = ContextVar("current_experiment", default=None)
MAX_INTERNAL_ERRORS = 3  # consecutive experiments broken by discover itself before the study stops
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


def init_study(folder: Path) -> Path:
    """Write the documented default configuration into `folder` (created if needed)."""
    path = folder / CONFIG_FILE
    if path.exists():
        raise StudyError(f"{path} exists already; edit it, or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(default_config_text())
    return path


def open_record(folder: Path, resume: bool) -> StudyRecord | None:
    path = folder / RECORD_FILE
    if path.exists() and not resume:
        raise StudyError(f"{folder} already holds a study; continue it with --resume, or use another folder")
    if not path.exists():
        if resume:
            raise StudyError(f"{folder} holds no study to resume (no {RECORD_FILE})")
        return None
    return StudyRecord.model_validate_json(path.read_text())


def run_study(
    folder: Path,
    config: StudyConfig,
    backend: Backend,
    resume: bool = False,
    max_experiments: int | None = None,
    say: Say = print,
) -> Outcome:
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    record = open_record(folder, resume)
    kb = open_knowledge_base(folder)
    try:
        if record is None:
            study = kb.add_study(config.name, config.model_dump(mode="json"), config.budget)
            record = StudyRecord(
                study_id=study.id,
                heldout_seed=secrets.randbelow(2**62),
                created_at=datetime.now(UTC).isoformat(),
            )
        elif kb.get(Study, record.study_id) is None:
            raise StudyError(
                f"{folder / RECORD_FILE} names study {record.study_id}, which knowledge.db lacks"
            )
        elif record.task != config.task:
            raise StudyError(f"this study is on {record.task}; a resumed study cannot change its task")
        record = record.model_copy(update={"budget": config.budget, "task": config.task})
        write_atomic(folder / RECORD_FILE, record.model_dump_json(indent=2))
        lab = make_lab(folder, config, backend, kb, record)
        connection = sqlite3.connect(folder / "checkpoints.db", check_same_thread=False)
        try:
            saver = SqliteSaver(connection)
            return Runner(lab, build_graph(lab, saver), saver, max_experiments, say).run(resume)
        finally:
            connection.close()
    finally:
        kb.close()


def make_lab(
    folder: Path, config: StudyConfig, backend: Backend, kb: KnowledgeBase, record: StudyRecord
) -> Lab:
    ledger = Ledger(parse_budget(config.budget), DatabaseLedgerStore(kb, record.study_id))
    estimator = CostEstimator(default_seconds=60.0)
    for key, seconds in ledger.costs():
        estimator.observe(key, seconds)
    if config.executor == "ray":
        from discover.sandbox.ray_backend import RayBackend

        try:
            backend = RayBackend(backend.name, config.ray_address, getattr(backend, "image", None))
        except SandboxUnavailable as exc:
            raise StudyError(str(exc)) from None
        pool = backend.pool(cpu_slots=config.workers or 1)
    else:
        pool = DevicePool.detect(cpu_slots=config.workers or 1)
    # Concurrency follows the devices unless the user chose it: one experiment per GPU slot.
    workers = config.workers or (pool.total if pool.kind == "cuda" else 1)
    config = config.model_copy(update={"workers": workers})
    sandbox = Sandbox(
        backend, folder / "jobs", job_limits(config, pool), record.study_id, heldout_seed=record.heldout_seed
    )
    proposer, llm = None, None
    if config.proposer == "llm":
        llm = make_llm(config, kb, record.study_id)
    else:
        proposer = make_proposer(config.proposer, config.evolution)
    return Lab(
        config=config, study_id=record.study_id, folder=folder, kb=kb, sandbox=sandbox, ledger=ledger,
        estimator=estimator, pool=pool, proposer=proposer, llm=llm,
    )  # fmt: skip


def job_limits(config: StudyConfig, pool: DevicePool) -> Limits:
    """The study's limits for one job; on a CPU host each of the `workers` concurrent jobs gets its
    share of the cores, since oversubscribed math threads stall."""
    if pool.kind != "cpu" or config.executor == "ray":  # Ray places jobs by their CPU requests
        return config.limits
    share = max(1.0, (os.cpu_count() or 1) // (config.workers or 1))
    return config.limits.model_copy(update={"cpus": min(config.limits.cpus, share)})


def make_llm(config: StudyConfig, kb: KnowledgeBase, study_id: str) -> LLM:
    """The study's LLM client: every call recorded in the knowledge base, and the dollars already
    spent by this study (before a resume) counted against the cap."""

    def record(call: CallRecord) -> None:
        kb.log_llm_call(study_id=study_id, experiment_id=CURRENT_EXPERIMENT.get(), **call.model_dump())

    with kb.reading() as session:
        costs = session.exec(select(LLMCall.cost_usd).where(LLMCall.study_id == study_id)).all()
    return LLM(config.llm, record=record, spent_usd=math.fsum(costs))


class Runner:
    def __init__(self, lab: Lab, graph, saver: SqliteSaver, max_experiments: int | None, say: Say) -> None:
        self.lab, self.graph, self.saver, self.say = lab, graph, saver, say
        self.max_experiments = max_experiments
        self.outcome = Outcome(stopped_because="")
        self.admit_lock = threading.Lock()
        self.started = 0
        self.internal_errors = 0
        self.exhausted = False
        self.llm_capped = False
        lab.on_record = self.on_record

    def run(self, resume: bool) -> Outcome:
        lab = self.lab
        reap = getattr(lab.sandbox.backend, "reap", None)
        if reap is not None:
            reap(lab.study_id)  # containers a crashed run of this study left behind
        if resume:
            settle_interrupted_jobs(lab, self.say)  # reads the jobs' file times: before the release
            quota.release_leftovers(lab.folder / "jobs")  # output folders a killed run left mounted
        self.train_baselines()
        with interrupts(lab.stopping, self.say, lab):
            unfinished = self.unfinished()
            if unfinished:
                self.say(f"resuming {len(unfinished)} unfinished experiment(s): {', '.join(unfinished)}")
            with ThreadPoolExecutor(max_workers=lab.config.workers, thread_name_prefix="experiment") as pool:
                wait_interruptibly([pool.submit(self.resume_one, thread) for thread in unfinished])
                wait_interruptibly([pool.submit(self.work) for _ in range(lab.config.workers)])
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
            if final.get("status") == "exhausted":
                self.exhausted = True
            if final.get("status") == "llm_cap":
                self.llm_capped = True

    def admit(self) -> int | None:
        """The next experiment's number, or None when the study should stop starting new ones."""
        with self.admit_lock:
            why = None
            if self.lab.stopping.is_set():
                why = "interrupted"
            elif self.exhausted:
                why = "the proposer found no untried design"
            elif self.llm_capped:
                why = "the LLM dollar cap is reached"
            elif self.internal_errors >= MAX_INTERNAL_ERRORS:
                why = f"{MAX_INTERNAL_ERRORS} experiments in a row failed inside discover"
            elif self.max_experiments is not None and self.started >= self.max_experiments:
                why = f"{self.max_experiments} experiment(s) run"
            elif not self.lab.affordable():
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
        left = self.lab.ledger.left
        self.say(f"{experiment_id} {name}: {status} ({detail[:160]}) [{left / 60:.1f} device-min left]")

    # -- baselines

    def train_baselines(self) -> None:
        """Screen the configured baselines once per study; they are the reference for fitness."""
        lab = self.lab
        for name in lab.config.baselines:
            architecture = baseline_architecture(lab.kb, name)
            runs = [
                run for arch, run in lab.kb.study_runs(lab.study_id, "screen") if arch.id == architecture.id
            ]
            if any(run.status == "succeeded" for run in runs):
                continue
            self.say(f"training baseline {name} at screening fidelity")
            run = train(lab, architecture, "screen", lab.config.seed)
            if run is None:
                raise StudyError(f"the budget cannot cover training baseline {name}; raise --budget")
            if run.status != "succeeded":
                self.say(f"baseline {name} failed: {run.failure_reason}")
        reference = lab.reference("screen")
        if reference is None:
            raise StudyError("no baseline could be trained, so nothing can be scored; see the messages above")
        for arch, run in lab.kb.study_runs(lab.study_id, "screen"):
            if arch.origin == "baseline" and run.status == "succeeded":
                score = lab.score(TrainResult.model_validate(run.result), reference[1]).value
                lab.kb.update_run(run.id, fitness=score)

    # -- the end

    def finish(self) -> Outcome:
        lab = self.lab
        self.outcome.stopped_because = self.outcome.stopped_because or "done"
        self.outcome.spent_s = lab.ledger.spent
        self.outcome.budget_s = lab.ledger.total.device_seconds
        self.outcome.leaderboard, self.outcome.rank_correlation = leaderboard(lab.kb, lab.study_id)
        heading = f"Stopped because {self.outcome.stopped_because}. Proposer: {lab.config.proposer}."
        text = leaderboard_markdown(
            f"{lab.config.name}: leaderboard on {lab.task}", heading, self.outcome.spent_s,
            self.outcome.budget_s, self.outcome.leaderboard, self.outcome.rank_correlation,
        )  # fmt: skip
        write_atomic(lab.folder / "leaderboard.md", text)
        return self.outcome


def baseline_architecture(kb: KnowledgeBase, name: str) -> Architecture:
    """The stored baseline `name`; a built-in one is stored on first use."""
    with kb.reading() as session:
        baseline = session.exec(select(Baseline).where(Baseline.name == name)).first()
    if baseline is None:
        builtins = builtin_baselines()
        if name not in builtins:
            raise StudyError(
                f"no baseline named {name!r}: built-ins are {', '.join(builtins)}; add your own "
                "with `discover baseline add FILE --name NAME`"
            )
        baseline = kb.add_baseline(name, builtins[name].read_text(), "builtin")
    architecture = kb.get(Architecture, baseline.architecture_id)
    assert architecture is not None
    return architecture


def settle_interrupted_jobs(lab: Lab, say: Say) -> None:
    """Charge the jobs a crash left reserved for the time they can be shown to have run (from their
    reservation to the last file they wrote), and mark their runs failed, as well as runs recorded
    but never admitted. Nothing is charged twice: a settled job leaves the ledger's outstanding set."""
    reserved_at = {entry.job_id: entry.at for entry in lab.ledger.store.entries() if entry.op == "reserve"}
    for job_id in lab.ledger.outstanding():
        files = [path for path in (lab.folder / "jobs").glob(f"{job_id}*/**/*") if path.is_file()]
        last = max((path.stat().st_mtime for path in files), default=reserved_at[job_id])
        seconds = max(0.0, last - reserved_at[job_id])
        lab.ledger.charge(job_id, seconds, devices=1)
        if lab.kb.get(Run, job_id) is not None:
            reason = "interrupted: the study stopped while this run was in progress"
            lab.kb.update_run(job_id, status="failed", failure_reason=reason, cost_device_seconds=seconds)
        say(f"settled interrupted job {job_id}: charged {seconds:.1f} device-seconds")
    for _, run in lab.kb.study_runs(lab.study_id):
        if run.status == "running":  # recorded, but killed before its job was admitted: nothing ran
            reason = "interrupted: the study stopped before this run started"
            lab.kb.update_run(run.id, status="failed", failure_reason=reason)


class interrupts:
    """Ctrl-C once: start no new job; the running jobs finish and their experiments pause at the next
    step. Twice: stop now (the running jobs are killed). Either way --resume continues every
    experiment from its last finished step."""

    def __init__(self, stopping: threading.Event, say: Say, lab: Lab) -> None:
        self.stopping, self.say, self.lab = stopping, say, lab
        self.previous = None

    def __enter__(self) -> interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def handle(self, signum: int, frame: object) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self.say("interrupted: finishing the running jobs (Ctrl-C again to stop now)")
            return
        self.say("stopping now; continue later with `discover run --resume`")
        cancel = getattr(self.lab.sandbox.backend, "kill_all", None)
        if cancel is not None:
            cancel()
        reap = getattr(self.lab.sandbox.backend, "reap", None)
        if reap is not None:
            reap(self.lab.study_id)
        from discover.sandbox.local import kill_running_jobs

        kill_running_jobs()
        os._exit(130)


def wait_interruptibly(futures: list[Future]) -> None:
    """Wait for the futures, raising the first error. Python runs signal handlers in the main thread
    only, and a Ctrl-C the kernel hands to another thread does not wake a blocked future.result():
    short timed waits let the handler run within a fraction of a second."""
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=0.2)
    for future in futures:
        future.result()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
