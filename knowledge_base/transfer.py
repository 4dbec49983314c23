"""A study as portable JSON lines, so findings can be shared and merged across machines.

    {"format": "discover-study", "schema": 1, "study": "<id or null for everything>"}
    {"table": "study", "row": {...}}
    {"table": "architecture", "row": {...}}
    ...

Import is all or nothing: every line is validated before one transaction writes anything. Rows
already present (same id; for ledger entries the same ledger, operation and job) are skipped, so
importing a file twice, or two overlapping exports, merges cleanly.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from pydantic import ValidationError
from sqlmodel import Session, SQLModel, or_, select

from discover.knowledge_base.migrations import SCHEMA_VERSION
from discover.knowledge_base.schema import (
    EXPORTED_TABLES,
    Architecture,
    Baseline,
    BudgetEntry,
    Chunk,
    Document,
    Finding,
    LLMCall,
    Run,
    Study,
    Verification,
)
from discover.knowledge_base.store import KnowledgeBase, StoreError, index_row

FORMAT = "discover-study"
TABLES: dict[str, type[SQLModel]] = {model.__tablename__: model for model in EXPORTED_TABLES}


def export(kb: KnowledgeBase, out: Path, study_id: str | None = None) -> Counter[str]:
    """Write one study (with the architectures its runs used), or the whole knowledge base when
    `study_id` is None. The file appears complete or not at all. Returns rows written per table."""
    with kb.reading() as session:
        if study_id is not None and session.get(Study, study_id) is None:
            raise StoreError(f"no study {study_id!r} in this knowledge base")
        rows = list(rows_to_export(session, study_id))
    written: Counter[str] = Counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps({"format": FORMAT, "schema": SCHEMA_VERSION, "study": study_id}) + "\n")
            for row in rows:
                table = type(row).__tablename__
                data = row.model_dump(mode="json", exclude={"seq"} if table == "budgetentry" else None)
                file.write(json.dumps({"table": table, "row": data}, allow_nan=False) + "\n")
                written[table] += 1
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return written


def rows_to_export(session: Session, study_id: str | None):
    if study_id is None:
        for model in EXPORTED_TABLES:
            yield from session.exec(select(model))
        return
    yield session.get(Study, study_id)
    runs = session.exec(select(Run).where(Run.study_id == study_id)).all()
    used = {run.architecture_id for run in runs}
    yield from session.exec(
        select(Architecture).where(or_(Architecture.study_id == study_id, Architecture.id.in_(used)))
    )
    yield from runs
    yield from session.exec(select(Finding).where(Finding.study_id == study_id))
    yield from session.exec(select(Verification).where(Verification.study_id == study_id))
    yield from session.exec(
        select(BudgetEntry).where(BudgetEntry.ledger == study_id).order_by(BudgetEntry.seq)
    )
    yield from session.exec(select(LLMCall).where(LLMCall.study_id == study_id))


def import_file(kb: KnowledgeBase, path: Path) -> tuple[Counter[str], int]:
    """Merge an export into this knowledge base. Returns (rows added per table, rows skipped)."""
    rows = read_export(path)
    added: Counter[str] = Counter()
    skipped = 0
    with kb.writing() as session:
        for row in rows:
            if already_stored(session, row):
                skipped += 1
                continue
            session.add(row)
            session.flush()  # so later rows (chunks) can find this one
            title = ""
            if isinstance(row, Chunk):
                title = session.get(Document, row.document_id).title
            index_row(session, row, title=title)
            added[type(row).__tablename__] += 1
    kb.embed_missing()
    return added, skipped


def read_export(path: Path) -> list[SQLModel]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise StoreError(f"cannot read {path}: {error}") from None
    if not lines:
        raise StoreError(f"{path} is empty, not a discover export")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StoreError(f"{path}:1: not a discover export (no {FORMAT!r} header)")
    if not isinstance(header.get("schema"), int) or header["schema"] > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: written with schema {header.get('schema')}, this discover reads up to "
            f"{SCHEMA_VERSION}: upgrade discover"
        )
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            model = TABLES[record["table"]]
            data = record["row"]
            if not isinstance(data, dict):
                raise TypeError("row is not an object")
            rows.append(model.model_validate(data))
        except KeyError as error:
            raise StoreError(f"{path}:{number}: unknown or missing {error}") from None
        except (ValueError, TypeError, ValidationError) as error:
            raise StoreError(f"{path}:{number}: {str(error).splitlines()[0]}") from None
    return rows


def already_stored(session: Session, row: SQLModel) -> bool:
    if isinstance(row, BudgetEntry):
        same = select(BudgetEntry).where(
            BudgetEntry.ledger == row.ledger, BudgetEntry.op == row.op, BudgetEntry.job_id == row.job_id
        )
        return session.exec(same).first() is not None
    if session.get(type(row), row.id) is not None:
        return True
    if isinstance(row, Document):  # the same content under another id: keep ours
        return (
            session.exec(select(Document).where(Document.content_hash == row.content_hash)).first()
            is not None
        )
    if isinstance(row, Chunk):  # its document was skipped as a duplicate
        return session.get(Document, row.document_id) is None
    if isinstance(row, Baseline):
        return session.exec(select(Baseline).where(Baseline.name == row.name)).first() is not None
    return False
