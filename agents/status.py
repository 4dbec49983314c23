"""Where a study stands, read from its folder alone (safe while `discover run` is writing):
budget spent and left, experiments by outcome, runs in progress, LLM spend, the leaderboard."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from pydantic import BaseModel
from sqlmodel import select

from discover.agents.checkpoints import experiment_endings, experiment_outcomes, experiment_states
from discover.agents.config import study_suite
from discover.agents.leaderboard import leaderboard
from discover.agents.record import RECORD_FILE, StudyError, StudyRecord, open_knowledge_base
from discover.agents.verifications import VerificationSummary, verification_summaries
from discover.budget.ledger import replay
from discover.budget.store import DatabaseLedgerStore
from discover.knowledge_base.schema import Architecture, Finding, LLMCall, Run, Study
from discover.knowledge_base.store import KnowledgeBase


class StudyStatus(BaseModel):
    name: str
    study_id: str
    task: str
    budget: str | None
    budget_s: float | None
    spent_s: float
    reserved_s: float  # held by jobs running now
    left_s: float | None  # budget_s - spent_s - reserved_s: what new jobs may still reserve
    designs: dict[str, int]  # latest screening status of each proposed design -> count
    # How each experiment ended (graph.ENDINGS; "unfinished" while one runs or waits for --resume),
    # from the study's checkpoints: duplicates and answers without a design leave no design behind.
    experiments: dict[str, int] = {}
    # The same grouped (`checkpoints.OUTCOME_OF`): trained, duplicate, no_code, rejected, and others.
    outcomes: dict[str, int] = {}
    running: list[str]  # designs with a run in progress
    llm_usd: float
    llm_requests: int  # HTTP requests to the endpoint, retries included (notes on malformed answers are none)
    leaderboard: list[dict]
    rank_correlation: float | None
    verifications: list[VerificationSummary]  # every claim tested, oldest first (replications inside)
    claims: int  # verifications whose design beats the baseline at the study's false-discovery rate
    awaiting_verification: list[str]  # promoted designs the budget left could not verify


def open_study(folder: Path) -> tuple[StudyRecord, KnowledgeBase]:
    path = folder / RECORD_FILE
    if not path.exists() or not (folder / "knowledge.db").exists():
        raise StudyError(f"{folder} holds no study (no {RECORD_FILE}); start one with `discover run`")
    record = StudyRecord.model_validate_json(path.read_text())
    return record, open_knowledge_base(folder, starter=None)


def study_status(folder: Path) -> StudyStatus:
    record, kb = open_study(folder)
    with kb:
        study = kb.get(Study, record.study_id)
        if study is None:
            raise StudyError(f"knowledge.db lacks study {record.study_id} named by {RECORD_FILE}")
        accounts = replay(DatabaseLedgerStore(kb, record.study_id).entries())  # as the ledger sees it
        latest: dict[str, str] = {}
        running = []
        for architecture, run in kb.study_runs(record.study_id, "screen"):
            if architecture.origin != "baseline":
                latest[architecture.id] = run.status
            if run.status == "running":
                running.append(architecture.name)
        with kb.reading() as session:
            proposed = session.exec(
                select(Architecture.id).where(Architecture.study_id == record.study_id)
            ).all()
            calls = session.exec(
                select(LLMCall.kind, LLMCall.cost_usd).where(LLMCall.study_id == record.study_id)
            ).all()
        designs = Counter(latest.get(architecture_id, "not trained") for architecture_id in proposed)
        verifications = verification_summaries(kb, record.study_id)
        verified = {verification.design for verification in verifications}
        awaiting = sorted({
            architecture.name
            for architecture, run in kb.study_runs(record.study_id, "screen")
            if "awaiting_verification" in run.result and architecture.name not in verified
        })  # fmt: skip
        higher_is_better = study_suite(folder, record.task).higher_is_better
        rows, correlation = leaderboard(kb, record.study_id, higher_is_better)
        if record.budget is None and study.budget:  # a study.json older than the record's budget
            record = StudyRecord.model_validate(record.model_dump() | {"budget": study.budget})
        budget = record.budget
        endings = experiment_endings(experiment_states(folder))
        return StudyStatus(
            name=study.name, study_id=study.id, task=record.task, budget=budget.text if budget else None,
            budget_s=budget.device_seconds if budget else None,
            spent_s=accounts.spent, reserved_s=accounts.reserved,
            left_s=accounts.left(budget) if budget else None,
            designs=dict(designs), running=running, llm_usd=math.fsum(cost for _, cost in calls),
            llm_requests=sum(kind == "request" for kind, _ in calls),
            leaderboard=rows, rank_correlation=correlation, verifications=verifications,
            claims=sum(verification.beats for verification in verifications), awaiting_verification=awaiting,
            experiments=endings, outcomes=experiment_outcomes(endings),
        )  # fmt: skip


class RunSummary(BaseModel):
    id: str
    fidelity: str
    purpose: str  # why it ran (`run_purpose`)
    seed: int
    status: str
    value: float | None
    fitness: float | None
    cost_device_seconds: float | None
    failure_reason: str | None


class DesignDetail(BaseModel):
    id: str
    name: str
    origin: str
    hypothesis: str
    motivation: str
    parents: list[str]
    code: str
    runs: list[RunSummary]
    findings: list[dict]


def run_purpose(run: Run) -> str:
    """Why a run was trained, in a few words: what its result may and may not be read as."""
    if "replication_of" in run.result:
        return "replication (fresh seeds and held-out set)"
    if "recheck_of" in run.result:
        return "too-good recheck (another seed, fresh held-out set)"
    return "screening (one seed)" if run.fidelity == "screen" else "verification"


def design_detail(folder: Path, name_or_id: str) -> DesignDetail:
    """One design of the study: its hypothesis and motivation, lineage, code, every run and the
    findings about it."""
    record, kb = open_study(folder)
    with kb:
        architecture = kb.find_design(record.study_id, name_or_id)
        if architecture is None:
            raise StudyError(f"no design named {name_or_id!r} in this study; see `discover status`")
        pairs = [pair for pair in kb.study_runs(record.study_id) if pair[0].id == architecture.id]
        with kb.reading() as session:
            lineage = select(Architecture).where(Architecture.id.in_(architecture.parent_ids))
            parents = [parent.name for parent in session.exec(lineage)]
            run_ids = {run.id for _, run in pairs}
            findings = [
                {"verdict": finding.verdict, "statement": finding.statement, "tags": finding.tags}
                for finding in session.exec(select(Finding).where(Finding.study_id == record.study_id))
                if run_ids & set(finding.evidence_run_ids)
            ]
        runs = [
            RunSummary(
                id=run.id,
                fidelity=run.fidelity,
                purpose=run_purpose(run),
                seed=run.seed,
                status=run.status,
                value=run.result.get("value"),
                fitness=run.fitness,
                cost_device_seconds=run.cost_device_seconds,
                failure_reason=run.failure_reason,
            )
            for _, run in pairs
        ]
        return DesignDetail(
            id=architecture.id, name=architecture.name, origin=architecture.origin,
            hypothesis=architecture.hypothesis, motivation=architecture.motivation, parents=parents,
            code=architecture.code, runs=runs, findings=findings,
        )  # fmt: skip
