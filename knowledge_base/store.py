"""The knowledge base: one SQLite file (default) or a PostgreSQL database holding a study's record.

    kb = KnowledgeBase("study/knowledge.db")          # or "postgresql://user@host/db"
    arch = kb.add_architecture("gated_mixer", code, origin="llm", motivation="...")
    kb.add_finding("Gating the state fixes recall at 8 pairs", verdict="supports", ...)
    hits = kb.search("why does recall collapse with more pairs", k=5)

Writes happen in `writing()` transactions that exclude every other writer: on SQLite by BEGIN
IMMEDIATE (WAL, so readers carry on), on PostgreSQL by row locks and, for the ledger, an advisory
lock. SQLite runs with synchronous=FULL, so a committed write survives kill -9 and power loss.
Every searchable row gets a `SearchItem` in the same transaction, so the index never lags.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, select

from discover.experiments.contract import code_hash
from discover.knowledge_base import search
from discover.knowledge_base.ingest import DocumentInput, chunk_text, read_documents
from discover.knowledge_base.migrations import upgrade
from discover.knowledge_base.parents import Scored
from discover.knowledge_base.schema import (
    ORIGIN_PATTERN,
    RUN_STATUSES,
    VERDICTS,
    Architecture,
    Baseline,
    Chunk,
    Document,
    Embedding,
    Finding,
    LLMCall,
    Run,
    SearchItem,
    Study,
    Verification,
)

STARTER_COGNITION = Path(__file__).parent / "cognition"
Row = TypeVar("Row", bound=SQLModel)


class StoreError(RuntimeError):
    """A request the store refuses; the message is one line, fit to show a user."""


class Embedder(Protocol):
    """Turns texts into vectors; `model` names the vector space (vectors of different models are
    never compared)."""

    model: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class Hit(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    ref_id: str
    title: str
    text: str
    score: float
    task: str | None = None
    verdict: str | None = None
    origin: str | None = None
    study_id: str | None = None
    created_at: datetime


def home() -> Path:
    """Where user-level state lives: $DISCOVER_HOME, else ~/.discover."""
    return Path(os.environ.get("DISCOVER_HOME") or Path.home() / ".discover")


def user_knowledge_base() -> str:
    """The knowledge base that every study of this user shares (lessons carry across studies)."""
    return str(home() / "knowledge.db")


def database_url(location: str | Path) -> str:
    """A path means a SQLite file; postgresql:// URLs use the psycopg (3) driver."""
    location = str(location)
    if location.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + location.split("://", 1)[1]
    if "://" in location:
        if location.startswith(("sqlite://", "postgresql+psycopg://")):
            return location
        raise StoreError(f"unsupported database {location!r}: give a file path or a postgresql:// URL")
    path = Path(location).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def sqlite_engine(url: str, begin: str) -> Engine:
    """A SQLite engine whose transactions start with `begin` (BEGIN or BEGIN IMMEDIATE)."""
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun by the listener below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def start(connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine


class KnowledgeBase:
    def __init__(
        self,
        location: str | Path,
        embedder: Embedder | None = None,
        starter: Path | None = STARTER_COGNITION,
    ):
        """Open (creating or migrating as needed) the knowledge base at `location`. A new one is
        loaded with the Markdown cognition entries under `starter` (None: start empty)."""
        self.url = database_url(location)
        self.backend = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self.embedder = embedder
        try:
            if self.backend == "sqlite":
                self._reader = sqlite_engine(self.url, "BEGIN")
                self._writer = sqlite_engine(self.url, "BEGIN IMMEDIATE")
            else:
                self._reader = self._writer = create_engine(self.url, pool_pre_ping=True)
            created = upgrade(self._begin_schema_change, search.create_index)
        except SQLAlchemyError as error:
            raise StoreError(f"cannot open knowledge base {location}: {first_line(error)}") from None
        if created and starter is not None:
            self.add_path(starter, collection="cognition")

    def close(self) -> None:
        self._reader.dispose()
        self._writer.dispose()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions

    @contextmanager
    def _begin_schema_change(self) -> Iterator[Connection]:
        """A transaction that excludes other processes creating or migrating the schema."""
        with self._writer.begin() as connection:
            if self.backend == "postgresql":  # SQLite's BEGIN IMMEDIATE excludes them already
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('discover-schema'))"))
            yield connection

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in a write transaction, committed on exit, rolled back on an exception."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with Session(self._reader, expire_on_commit=False) as session:
            yield session

    def get(self, model: type[Row], row_id: str) -> Row | None:
        with self.reading() as session:
            return session.get(model, row_id)

    def count(self, model: type[SQLModel]) -> int:
        with self.reading() as session:
            return session.exec(select(func.count()).select_from(model)).one()

    # -- studies, architectures, runs

    def add_study(self, name: str, config: dict[str, Any] | None = None, budget: str | None = None) -> Study:
        with self.writing() as session:
            study = Study(name=name, config=config or {}, budget=budget)
            session.add(study)
        return study

    def add_architecture(
        self,
        name: str,
        code: str,
        origin: str,
        motivation: str = "",
        parent_ids: Sequence[str] = (),
        study_id: str | None = None,
        functional_hash: str | None = None,
        experiment_id: str | None = None,
        hypothesis: str = "",
    ) -> Architecture:
        """Store a design. In a study, a name another of its designs holds gets a suffix (-2, -3,
        ...): the stored architecture's `name` is the one to show."""
        if not re.fullmatch(ORIGIN_PATTERN, origin):
            raise StoreError(f"origin {origin!r} is not a short lowercase word")
        architecture = Architecture(
            name=name, code=code, code_hash=code_hash(code), origin=origin, motivation=motivation,
            parent_ids=list(parent_ids), study_id=study_id, functional_hash=functional_hash,
            experiment_id=experiment_id, hypothesis=hypothesis,
        )  # fmt: skip
        with self.writing() as session:
            if study_id is not None:  # a name finds one design of its study (`find_design`)
                self._lock_names(session, study_id)
                architecture.name = free_name(name, self._names(session, study_id))
            session.add(architecture)
            index_row(session, architecture)
        return architecture

    def add_run(self, architecture_id: str, task: str, **fields: Any) -> Run:
        run = Run(architecture_id=architecture_id, task=task, **fields)
        require_one_of("status", run.status, RUN_STATUSES)
        with self.writing() as session:
            if session.get(Architecture, architecture_id) is None:
                raise StoreError(f"run refers to architecture {architecture_id!r}, which is not stored")
            session.add(run)
        return run

    def update_run(self, run_id: str, **fields: Any) -> Run:
        if "status" in fields:
            require_one_of("status", fields["status"], RUN_STATUSES)
        with self.writing() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise StoreError(f"no run {run_id!r}")
            for name, value in fields.items():
                if name not in Run.model_fields or name == "id":
                    raise StoreError(f"runs have no field {name!r}")
                setattr(run, name, value)
            session.add(run)
        return run

    def add_baseline(self, name: str, code: str, source: str, description: str = "") -> Baseline:
        with self.writing() as session:
            if session.exec(select(Baseline).where(Baseline.name == name)).first() is not None:
                raise StoreError(f"a baseline named {name!r} exists already")
            architecture = Architecture(
                name=name, code=code, code_hash=code_hash(code), origin="baseline", motivation=description
            )
            baseline = Baseline(
                name=name, architecture_id=architecture.id, description=description, source=source
            )
            session.add(architecture)
            session.add(baseline)
            index_row(session, architecture)
        return baseline

    def study_runs(self, study_id: str, fidelity: str | None = None) -> list[tuple[Architecture, Run]]:
        """A study's runs with their architectures, oldest first (by creation of the architecture,
        then of the run): the record the proposers, the analyst and the leaderboard read."""
        query = select(Architecture, Run).join(Run, Run.architecture_id == Architecture.id)
        query = query.where(Run.study_id == study_id)
        if fidelity is not None:
            query = query.where(Run.fidelity == fidelity)
        with self.reading() as session:
            rows = session.exec(query).all()
        return sorted(rows, key=lambda row: (row[0].created_at, row[0].id, row[1].seed, row[1].id))

    def other_studies_screens(self, task: str, study_id: str) -> list[tuple[str, float, str, dict[str, Any]]]:
        """(code hash, fitness, study id, that study's configuration) of every scored screening run
        on `task` in studies other than `study_id`, oldest first: what a model-based proposer may
        start from in a new study."""
        query = (
            select(Architecture.code_hash, Run.fitness, Run.study_id, Study.config)
            .join(Run, Run.architecture_id == Architecture.id)
            .join(Study, Study.id == Run.study_id)
        )
        query = query.where(
            Run.task == task, Run.fidelity == "screen", Run.status == "succeeded", Run.fitness.is_not(None),
            Run.study_id != study_id,
        )  # fmt: skip
        with self.reading() as session:
            rows = session.exec(query.order_by(Run.started_at, Run.id)).all()
        return [(code, fitness, study, config) for code, fitness, study, config in rows]

    def set_functional_hash(self, architecture_id: str, functional_hash: str) -> None:
        with self.writing() as session:
            architecture = session.get(Architecture, architecture_id)
            if architecture is not None:
                architecture.functional_hash = functional_hash
                session.add(architecture)

    def functional_twin(self, study_id: str, functional_hash: str, exclude_id: str) -> Architecture | None:
        """The earliest other design of this study, or one it trained (a baseline), that computes
        the same function (the probe's functional hash); None when there is none."""
        same = select(Architecture).where(
            Architecture.functional_hash == functional_hash, Architecture.id != exclude_id
        )
        with self.reading() as session:
            matches = session.exec(same).all()
            trained = set(session.exec(select(Run.architecture_id).where(Run.study_id == study_id)).all())
        mine = [a for a in matches if a.study_id == study_id or a.id in trained]
        return min(mine, key=lambda a: (a.created_at, a.id), default=None)

    def add_verification(self, verification: Verification) -> Verification:
        with self.writing() as session:
            session.add(verification)
        return verification

    def study_verifications(self, study_id: str) -> list[Verification]:
        """A study's verifications, oldest first."""
        query = select(Verification).where(Verification.study_id == study_id)
        with self.reading() as session:
            return sorted(session.exec(query).all(), key=lambda row: (row.created_at, row.id))

    def set_q_values(self, decided: dict[str, tuple[float, bool]]) -> None:
        """Store each verification's (q-value, beats), by id, in one transaction."""
        with self.writing() as session:
            for verification_id, (q_value, beats) in decided.items():
                row = session.get(Verification, verification_id)
                if row is not None:
                    row.q_value, row.beats = q_value, beats
                    session.add(row)

    def architecture_names(self, study_id: str) -> set[str]:
        """The names of every architecture the study recorded, trained or not (an experiment
        stopped before its first run still holds its design)."""
        with self.reading() as session:
            return self._names(session, study_id)

    def _lock_names(self, session: Session, study_id: str) -> None:
        """Keep the study's names still until this write commits, so two designs added at once
        cannot both take a free name. SQLite's BEGIN IMMEDIATE excludes other writers already."""
        if self.backend == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"names/{study_id}"}
            )

    @staticmethod
    def _names(session: Session, study_id: str) -> set[str]:
        return set(session.exec(select(Architecture.name).where(Architecture.study_id == study_id)).all())

    def architecture_code_hashes(self, study_id: str) -> set[str]:
        """The code hashes of every architecture the study recorded, trained or not."""
        with self.reading() as session:
            query = select(Architecture.code_hash).where(Architecture.study_id == study_id)
            return set(session.exec(query).all())

    def find_design(self, study_id: str, name_or_id: str) -> Architecture | None:
        """A design of this study, by name or id: one it proposed, or one it trained (a baseline).
        A design of another study of the same knowledge base is not found."""
        named = (Architecture.name == name_or_id) | (Architecture.id == name_or_id)
        with self.reading() as session:
            matches = session.exec(select(Architecture).where(named)).all()
            trained = select(Run.architecture_id).where(Run.study_id == study_id)
            in_study = set(
                session.exec(trained.where(Run.architecture_id.in_([a.id for a in matches]))).all()
            )
        return next((a for a in matches if a.study_id == study_id or a.id in in_study), None)

    def find_architecture(self, study_id: str | None, code: str) -> Architecture | None:
        """The architecture with this code (by its hash) in the study or shared, if any."""
        query = select(Architecture).where(Architecture.code_hash == code_hash(code))
        query = query.where((Architecture.study_id == study_id) | Architecture.study_id.is_(None))
        with self.reading() as session:
            return session.exec(query).first()

    def population(self, task: str, study_id: str | None = None) -> list[Scored]:
        """Every architecture with a scored run on `task`, as parent-selection candidates: its best
        fitness, how often it was already used as a parent, and (log10 parameters, log10 FLOPs per
        token) as behaviour descriptors for MAP-Elites."""
        scored = select(Run).where(Run.task == task, Run.status == "succeeded", Run.fitness.is_not(None))
        if study_id is not None:
            scored = scored.where(Run.study_id == study_id)
        with self.reading() as session:
            runs = session.exec(scored).all()
            children: Counter[str] = Counter()
            for (parents,) in session.execute(select(Architecture.parent_ids)):
                children.update(parents)
        best: dict[str, Run] = {}
        for run in runs:
            if run.architecture_id not in best or run.fitness > best[run.architecture_id].fitness:
                best[run.architecture_id] = run
        return [
            Scored(arch_id, run.fitness, children[arch_id], descriptors(run.result))
            for arch_id, run in sorted(best.items())
        ]

    # -- findings and calls

    def add_finding(
        self,
        statement: str,
        verdict: str,
        evidence_run_ids: Sequence[str] = (),
        effect_size: float | None = None,
        effect_interval: tuple[float, float] | None = None,
        confidence: float | None = None,
        tags: Sequence[str] = (),
        task: str | None = None,
        study_id: str | None = None,
    ) -> Finding:
        fields = finding_fields(
            statement, verdict, evidence_run_ids, effect_size, effect_interval, confidence, tags
        )
        finding = Finding(**fields, task=task, study_id=study_id)
        with self.writing() as session:
            session.add(finding)
            index_row(session, finding)
        self.embed_missing()
        return finding

    def revise_finding(self, finding_id: str, statement: str, verdict: str, **evidence: Any) -> Finding:
        """The finding with new evidence: its row and its search item rewritten in place (and its
        vector recomputed), so retrieval never returns the superseded version. `evidence`: the
        keyword arguments of `add_finding` from evidence_run_ids to tags."""
        fields = finding_fields(statement, verdict, **evidence)
        with self.writing() as session:
            finding = session.get(Finding, finding_id)
            if finding is None:
                raise StoreError(f"no finding {finding_id}")
            for name, value in fields.items():
                setattr(finding, name, value)
            session.add(finding)
            item = session.exec(
                select(SearchItem).where(SearchItem.kind == "finding", SearchItem.ref_id == finding_id)
            ).one()
            item.body, item.verdict = " ".join([finding.statement, *finding.tags]), finding.verdict
            session.add(item)
            session.execute(delete(Embedding).where(Embedding.item_id == item.id))
        self.embed_missing()
        return finding

    def find_finding(self, study_id: str, tag: str) -> Finding | None:
        """The study's latest finding tagged `tag`."""
        with self.reading() as session:
            rows = session.exec(select(Finding).where(Finding.study_id == study_id)).all()
        tagged = [row for row in rows if tag in row.tags]
        return max(tagged, key=lambda row: (row.created_at, row.id), default=None)

    def log_llm_call(self, role: str, model: str, **fields: Any) -> LLMCall:
        call = LLMCall(role=role, model=model, **fields)
        with self.writing() as session:
            session.add(call)
        return call

    # -- documents

    def add_document(self, document: DocumentInput) -> tuple[Document, bool]:
        """Store a document and its chunks; (document, False) when this content is stored already.
        A changed document from the same source replaces the old version."""
        with self.writing() as session:
            existing = session.exec(
                select(Document).where(Document.content_hash == document.content_hash)
            ).first()
            if existing is not None:
                return existing, False
            for old in session.exec(
                select(Document).where(
                    Document.source == document.source, Document.collection == document.collection
                )
            ):
                delete_document(session, old)
            stored = Document(
                collection=document.collection, source=document.source, title=document.title,
                content_hash=document.content_hash, meta=document.meta,
            )  # fmt: skip
            session.add(stored)
            for ordinal, piece in enumerate(chunk_text(document.body)):
                chunk = Chunk(document_id=stored.id, ordinal=ordinal, text=piece)
                session.add(chunk)
                index_row(session, chunk, title=document.title)
        self.embed_missing()
        return stored, True

    def add_path(self, path: Path, collection: str = "documents") -> tuple[int, int]:
        """Ingest a file or folder; returns (documents added, documents already stored)."""
        added = unchanged = 0
        for document in read_documents(path, collection=collection):
            _, new = self.add_document(document)
            added += new
            unchanged += not new
        return added, unchanged

    def remove_collection(self, collection: str) -> int:
        """Delete every document of a collection (e.g. "cognition", to replace the starter base)."""
        with self.writing() as session:
            documents = session.exec(select(Document).where(Document.collection == collection)).all()
            for document in documents:
                delete_document(session, document)
        return len(documents)

    # -- retrieval

    def search(self, query: str, k: int = 10, filters: search.SearchFilters | None = None) -> list[Hit]:
        """The k best items for `query`: BM25, fused with dense similarity when an embedder is set."""
        if k < 1:
            raise StoreError(f"k must be at least 1, got {k}")
        filters = filters or search.SearchFilters()
        with self.reading() as session:
            connection = session.connection()
            ranked = search.lexical(connection, query, k if self.embedder is None else 4 * k, filters)
            if self.embedder is not None:
                vector = self.embedder.embed([query])[0]
                nearest = search.dense(connection, vector, self.embedder.model, 4 * k, filters)
                ranked = search.fuse(ranked, nearest, k=k)
            items = {item.id: item for item in session.exec(
                select(SearchItem).where(SearchItem.id.in_([item_id for item_id, _ in ranked]))
            )}  # fmt: skip
        return [
            Hit(
                kind=item.kind,
                ref_id=item.ref_id,
                title=item.title,
                text=item.body,
                score=score,
                task=item.task,
                verdict=item.verdict,
                origin=item.origin,
                study_id=item.study_id,
                created_at=item.created_at,
            )
            for item_id, score in ranked
            if (item := items.get(item_id)) is not None
        ]

    def embed_missing(self, batch: int = 64) -> int:
        """Compute vectors for search items that lack one from the configured embedder."""
        if self.embedder is None:
            return 0
        model, done = self.embedder.model, 0
        while True:
            with self.reading() as session:
                pending = session.exec(
                    select(SearchItem.id, SearchItem.title, SearchItem.body)
                    .where(~SearchItem.id.in_(select(Embedding.item_id).where(Embedding.model == model)))
                    .order_by(SearchItem.id)
                    .limit(batch)
                ).all()
            if not pending:
                return done
            vectors = self.embedder.embed([f"{title}\n{body}".strip() for _, title, body in pending])
            with self.writing() as session:
                for (item_id, _, _), vector in zip(pending, vectors, strict=True):
                    unit = search.unit(vector).astype(np.float32)
                    session.merge(Embedding(item_id=item_id, model=model, vector=unit.tobytes()))
            done += len(pending)


# ----------------------------------------------------------------------------- helpers


def descriptors(result: dict[str, Any]) -> tuple[float, ...]:
    size, cost = result.get("params"), result.get("flops_per_token")
    if not (isinstance(size, int | float) and isinstance(cost, int | float) and size > 0 and cost > 0):
        return ()
    return (math.log10(size), math.log10(cost))


def index_row(session: Session, row: SQLModel, title: str = "") -> None:
    """Add the search item of a finding, chunk or architecture (in the caller's transaction)."""
    if isinstance(row, Finding):
        item = SearchItem(
            kind="finding", ref_id=row.id, study_id=row.study_id, task=row.task, verdict=row.verdict,
            created_at=row.created_at, body=" ".join([row.statement, *row.tags]),
        )  # fmt: skip
    elif isinstance(row, Chunk):
        item = SearchItem(kind="chunk", ref_id=row.id, title=title, body=row.text)
    elif isinstance(row, Architecture):
        item = SearchItem(
            kind="architecture", ref_id=row.id, study_id=row.study_id, origin=row.origin,
            created_at=row.created_at, title=row.name, body=row.motivation,
        )  # fmt: skip
    else:
        return
    session.add(item)


def delete_document(session: Session, document: Document) -> None:
    chunk_ids = list(session.exec(select(Chunk.id).where(Chunk.document_id == document.id)))
    item_ids = select(SearchItem.id).where(SearchItem.kind == "chunk", SearchItem.ref_id.in_(chunk_ids))
    session.execute(delete(Embedding).where(Embedding.item_id.in_(item_ids)))
    session.execute(delete(SearchItem).where(SearchItem.kind == "chunk", SearchItem.ref_id.in_(chunk_ids)))
    session.execute(delete(Chunk).where(Chunk.document_id == document.id))
    session.delete(document)


def finding_fields(
    statement: str,
    verdict: str,
    evidence_run_ids: Sequence[str] = (),
    effect_size: float | None = None,
    effect_interval: tuple[float, float] | None = None,
    confidence: float | None = None,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """A finding's columns, checked: StoreError for a bad verdict, statement or confidence."""
    require_one_of("verdict", verdict, VERDICTS)
    if not statement.strip():
        raise StoreError("a finding needs a statement")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        raise StoreError(f"confidence must be between 0 and 1, got {confidence}")
    low, high = effect_interval if effect_interval is not None else (None, None)
    return {
        "statement": statement, "verdict": verdict, "evidence_run_ids": list(evidence_run_ids),
        "effect_size": effect_size, "effect_low": low, "effect_high": high, "confidence": confidence,
        "tags": list(tags),
    }  # fmt: skip


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or when another design holds it, `name` with the first free suffix -2, -3, ..."""
    if name not in taken:
        return name
    return next(f"{name}-{number}" for number in itertools.count(2) if f"{name}-{number}" not in taken)


def require_one_of(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise StoreError(f"{field} {value!r} is not one of {', '.join(allowed)}")


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
