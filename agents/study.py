"""`discover run` from start to end: open or create the study, settle what a crash left behind,
train the baselines, run the study loop, and write the leaderboard.

A study lives in one folder:

    discover.toml       the configuration (`discover init` writes a documented one)
    study.json          the study's id and secret held-out seed (created on the first run)
    knowledge.db        every architecture, run, finding and ledger entry (SQLite)
    checkpoints.db      the experiment graph's checkpoints, for --resume
    candidates/         every proposed candidate file
    runs/               metrics.jsonl and result.json of every training run
    jobs/               the sandbox jobs' folders
    leaderboard.md      written when the study stops

Where each part lives: the objects a study works with are built in `compose.py`; the loop over
experiments is `loop.py`; one experiment is `graph.py`; the baselines are `study_baselines.py`;
budget and crash settlement are `discover.budget`.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from discover.agents import replication
from discover.agents.compose import compose_study
from discover.agents.config import CONFIG_FILE, StudyConfig, default_config_text
from discover.agents.context import StudyContext
from discover.agents.graph import build_graph
from discover.agents.interrupts import interrupts
from discover.agents.loop import Outcome, StudyLoop
from discover.agents.record import RECORD_FILE, StudyError, StudyRecord, open_knowledge_base
from discover.agents.study_baselines import train_baselines
from discover.agents.study_lock import StudyLock
from discover.budget.jobs import Paused
from discover.budget.settle import settle_interrupted_jobs
from discover.experiments.files import write_atomic
from discover.knowledge_base.schema import Study, Verification
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox import quota
from discover.sandbox.base import Backend

Say = Callable[[str], None]


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


def study_budget(folder: Path, config: StudyConfig, given: str | None, resume: bool) -> StudyConfig:
    """The budget belongs to the study: a new study spends `--budget` (`given`) or discover.toml's;
    a resumed one keeps the budget it was started (or last resumed) with, unless `--budget` changes
    it. Returns the configuration with that budget."""
    record = open_record(folder, resume)
    if given is not None or record is None or record.budget is None:
        return config  # the command line's budget, or discover.toml's for a new study
    return config.with_overrides(budget=record.budget.text)


def run_study(
    folder: Path,
    config: StudyConfig,
    backend: Backend,
    resume: bool = False,
    max_experiments: int | None = None,
    say: Say = print,
) -> Outcome:
    """Run the study in `folder` (one writer at a time) until it stops; see the module docstring."""
    folder = folder.resolve()
    with StudyLock(folder):
        record = open_record(folder, resume)
        kb = open_knowledge_base(folder)
        try:
            return run_locked(folder, config, backend, kb, record, max_experiments, say)
        finally:
            kb.close()


def settle_leftovers(study: StudyContext, say: Say) -> None:
    """What a crashed or killed run of this study left behind: containers, charges, mounts."""
    study.sandbox.backend.reap(study.study_id)
    # reads the jobs' file times: before the release
    settle_interrupted_jobs(study.ledger, study.kb, study.study_id, study.folder / "jobs", say)
    quota.release_leftovers(study.folder / "jobs")  # output folders a killed run left mounted


def replicate_design(
    folder: Path, config: StudyConfig, backend: Backend, design: str, say: Say
) -> Verification:
    """`discover replicate`: the design's claim tested again (`replication.py`), charged to the
    study's budget, as the study's one writer."""
    folder = folder.resolve()
    with StudyLock(folder):
        record = open_record(folder, resume=True)
        assert record is not None
        kb = open_knowledge_base(folder)
        try:
            architecture = kb.find_design(record.study_id, design)
            if architecture is None:
                raise StudyError(f"no design named {design!r} in this study; see `discover status`")
            study = compose_study(folder, config, backend, kb, record)
            settle_leftovers(study, say)
            jobs = study.folder / "jobs"
            with interrupts(study.stopping, say, study.sandbox.backend, study.study_id, jobs):
                try:
                    return replication.replicate(study, architecture)
                except Paused:
                    raise StudyError("interrupted: the replication did not finish") from None
        finally:
            kb.close()


def run_locked(
    folder: Path,
    config: StudyConfig,
    backend: Backend,
    kb: KnowledgeBase,
    record: StudyRecord | None,
    max_experiments: int | None,
    say: Say,
) -> Outcome:
    resume = record is not None
    if record is None:
        row = kb.add_study(config.name, config.model_dump(mode="json"), config.budget.text)
        record = StudyRecord(
            study_id=row.id, heldout_seed=secrets.randbelow(2**62), created_at=datetime.now(UTC).isoformat()
        )
    elif kb.get(Study, record.study_id) is None:
        raise StudyError(f"{folder / RECORD_FILE} names study {record.study_id}, which knowledge.db lacks")
    elif record.task != config.task:
        raise StudyError(f"this study is on {record.task}; a resumed study cannot change its task")
    elif record.budget is not None and record.budget != config.budget:
        say(f"budget changed from {record.budget} to {config.budget} (--budget)")
    latest = {"budget": config.budget, "task": config.task, "proposer": config.proposer}
    record = record.model_copy(update=latest)
    write_atomic(folder / RECORD_FILE, record.model_dump_json(indent=2))
    study = compose_study(folder, config, backend, kb, record)
    if resume:
        settle_leftovers(study, say)
    else:
        study.sandbox.backend.reap(study.study_id)
    connection = sqlite3.connect(folder / "checkpoints.db", check_same_thread=False)
    try:
        saver = SqliteSaver(connection)
        loop = StudyLoop(study, build_graph(study, saver), saver, max_experiments, say)
        jobs = study.folder / "jobs"
        with interrupts(study.stopping, say, study.sandbox.backend, study.study_id, jobs) as signals:
            try:
                cannot_go_on = train_baselines(study, say)
            except Paused:
                say("interrupted while training the baselines; --resume continues")
                cannot_go_on = None
            outcome = loop.finish(stopped_because=cannot_go_on) if cannot_go_on else loop.run()
        outcome.signal = signals.received
        return outcome
    finally:
        connection.close()
