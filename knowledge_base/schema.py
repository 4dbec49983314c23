"""The tables of a knowledge base: one study's record and the memory that informs the next one.

Ids are random hex strings, not counters, so that studies exported from different machines merge
without collisions (`discover import`). Times are timezone-aware UTC. Free-form structured values (configs,
results, lists of ids) are JSON columns, which both SQLite and PostgreSQL store natively.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Who made a design: "baseline", "human", or the origin of the proposer that proposed it (each
# proposer declares its own, see discover.agents.proposers), so an origin is a short lowercase word.
ORIGIN_PATTERN = r"[a-z][a-z0-9_]{0,31}"
RUN_STATUSES = ("pending", "running", "succeeded", "failed", "rejected")
VERDICTS = ("supports", "refutes", "inconclusive")
SEARCH_KINDS = ("finding", "chunk", "architecture")


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def json_column() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def json_list_column() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def text_column(nullable: bool = False) -> Any:
    return Field(default=None if nullable else "", sa_column=Column(Text, nullable=nullable))


class SchemaVersion(SQLModel, table=True):
    """One row: the schema version this database was last migrated to."""

    id: int = Field(default=1, primary_key=True)
    version: int


class Study(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
    config: dict[str, Any] = json_column()
    budget: str | None = None  # as the user wrote it, e.g. "200gpuh"


class Architecture(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    study_id: str | None = Field(default=None, index=True)  # None: shared (baselines, human seeds)
    name: str  # for people, unique within its study; the identity is the code (code_hash)
    code: str = text_column()
    code_hash: str = Field(index=True)
    functional_hash: str | None = Field(default=None, index=True)  # from the probes
    parent_ids: list[str] = json_list_column()
    motivation: str = text_column()
    hypothesis: str = text_column()  # what the proposer expected of it, and why (schema 5)
    origin: str  # matches ORIGIN_PATTERN
    experiment_id: str | None = None  # the study's experiment that proposed it (schema 2)
    created_at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    architecture_id: str = Field(index=True)
    study_id: str | None = Field(default=None, index=True)
    task: str = Field(index=True)
    fidelity: str = "full"  # e.g. "screen" for a short run, "full" for the task's default
    seed: int = 0
    status: str = "pending"  # one of RUN_STATUSES
    sandbox: str | None = None
    devices: list[str] = json_list_column()
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cost_device_seconds: float | None = None
    fitness: float | None = None  # against the task's reference baseline; None until scored
    result: dict[str, Any] = json_column()
    metrics_path: str | None = None
    failure_reason: str | None = text_column(nullable=True)


class Finding(SQLModel, table=True):
    """A typed claim with its evidence. Negative results are findings too (verdict "refutes")."""

    id: str = Field(default_factory=new_id, primary_key=True)
    study_id: str | None = Field(default=None, index=True)
    statement: str = text_column()
    evidence_run_ids: list[str] = json_list_column()
    verdict: str  # one of VERDICTS
    effect_size: float | None = None
    effect_low: float | None = None  # interval around the effect size, e.g. 95% bootstrap
    effect_high: float | None = None
    confidence: float | None = None  # 0..1
    task: str | None = None
    tags: list[str] = json_list_column()
    created_at: datetime = Field(default_factory=utcnow)


class Verification(SQLModel, table=True):
    """A design tested against a baseline at full fidelity: per-seed values of both, trained on the
    same seeds, and the test that decided it (`discover.agents.statistics.compare`). `q_value` is
    the Benjamini-Hochberg adjustment over every complete verification of the study, recomputed as
    they accumulate; the design beats the baseline only when it is at most `alpha` (schema 3). A
    replication (`replicates`) tests a claim again on fresh seeds and held-out data (schema 4)."""

    id: str = Field(default_factory=new_id, primary_key=True)
    study_id: str | None = Field(default=None, index=True)
    architecture_id: str = Field(index=True)
    baseline: str  # the baseline's name
    task: str
    seeds: list[int] = json_list_column()
    values: list[float] = json_list_column()  # the design's metric on each seed, as measured
    baseline_values: list[float] = json_list_column()  # the baseline's on the same seeds
    status: str  # "complete", or "inconclusive" (a seed failed: no test was run)
    reason: str | None = text_column(nullable=True)
    difference: float | None = None  # mean per-seed gain, oriented so that larger is better
    interval_low: float | None = None  # of the gain, at 1 - 2 alpha (lower end: the one-sided bound)
    interval_high: float | None = None
    p_value: float | None = None  # one-sided
    q_value: float | None = None
    alpha: float = 0.05
    beats: bool = False  # for a replication: whether the claim held (its own test, outside BH)
    replicates: str | None = None  # the id of the verification it tests again (schema 4)
    heldout_draw: int = 0  # the held-out set it was scored on (`Sandbox.heldout_seed_of`)
    created_at: datetime = Field(default_factory=utcnow)


class Baseline(SQLModel, table=True):
    """A human-designed reference; its code lives in its Architecture row (origin "baseline")."""

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(unique=True)
    architecture_id: str
    description: str = text_column()
    source: str  # "builtin" or the file it was added from
    added_at: datetime = Field(default_factory=utcnow)


class Document(SQLModel, table=True):
    """An ingested paper or note; its text lives in its chunks."""

    id: str = Field(default_factory=new_id, primary_key=True)
    collection: str = Field(index=True)  # "cognition" for the starter base, "documents" by default
    source: str
    title: str
    content_hash: str = Field(unique=True)  # re-adding the same content is a no-op
    meta: dict[str, Any] = json_column()
    added_at: datetime = Field(default_factory=utcnow)


class Chunk(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    document_id: str = Field(index=True)
    ordinal: int
    text: str = text_column()


class BudgetEntry(SQLModel, table=True):
    """A line of the budget ledger (see `discover.budget.ledger`); `seq` orders the entries."""

    seq: int | None = Field(default=None, primary_key=True)
    ledger: str = Field(index=True)  # the study id, or another name for a ledger
    op: str
    job_id: str
    seconds: float
    wall_seconds: float | None = None
    devices: int | None = None
    key: str = ""
    at: float


class LLMCall(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    study_id: str | None = Field(default=None, index=True)
    role: str  # researcher, coder, analyst, ...
    experiment_id: str | None = None  # the experiment it was made for, if any (schema 2)
    model: str
    # "request": one HTTP request (retries each one); "note": a reply that gave no usable answer,
    # noted beside the request that got it (schema 6)
    kind: str = "request"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    status: str = "ok"  # a request: "ok", "error" or "refused"; a note: "malformed"
    error_kind: str | None = None  # a failed request's: "rate_limited", "server_error", "timeout", ... (6)
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class SearchItem(SQLModel, table=True):
    """One searchable text (a finding, a document chunk, an architecture's motivation) with the
    fields search filters on. The backend's full-text index follows this table (see `search`)."""

    __table_args__ = (UniqueConstraint("kind", "ref_id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)  # one of SEARCH_KINDS
    ref_id: str
    study_id: str | None = Field(default=None, index=True)
    task: str | None = None
    verdict: str | None = None
    origin: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    title: str = text_column()
    body: str = text_column()


class Embedding(SQLModel, table=True):
    """A dense vector of a search item (float32 bytes), present only when embeddings are configured."""

    item_id: int = Field(primary_key=True)
    model: str
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


# Rows that make up a study's portable record, in an order that import can replay.
EXPORTED_TABLES: tuple[type[SQLModel], ...] = (
    Study, Architecture, Run, Finding, Verification, Baseline, Document, Chunk, BudgetEntry, LLMCall,
)  # fmt: skip
