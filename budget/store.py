"""The ledger's store: its entries in the knowledge base's `budgetentry` table, so a study's
accounts live beside its runs and reach every worker that shares the database.

`transact` reads the entries added since its last read and appends the decision inside one write
transaction that excludes other writers to this ledger: SQLite's BEGIN IMMEDIATE locks the
database file; on PostgreSQL a transaction-scoped advisory lock keyed by the ledger name serialises
its writers. A committed entry survives kill -9 of the process that wrote it.
"""

from __future__ import annotations

import threading

from pydantic import ValidationError
from sqlalchemy import text
from sqlmodel import Session, select

from discover.budget.ledger import Decide, LedgerEntry, LedgerError
from discover.knowledge_base.schema import BudgetEntry
from discover.knowledge_base.store import KnowledgeBase


class DatabaseLedgerStore:
    """The `LedgerStore` of one ledger (named by its study id) in a knowledge base."""

    def __init__(self, kb: KnowledgeBase, ledger: str):
        self.kb = kb
        self.ledger = ledger
        # Entries read so far and the last seq among them: the table only grows, and writers of one
        # ledger are serialised, so each read fetches just the rows after it (a study's ledger
        # grows by thousands of rows; reading them all on every decision cost O(n) per job).
        self._entries: list[LedgerEntry] = []
        self._last_seq = 0
        self._mutex = threading.Lock()

    def append(self, entry: LedgerEntry) -> None:
        self.transact(lambda _: entry)

    def entries(self) -> list[LedgerEntry]:
        with self._mutex, self.kb.reading() as session:
            self._sync(session)
            return list(self._entries)

    def transact(self, decide: Decide) -> LedgerEntry | None:
        with self._mutex:
            with self.kb.writing() as session:
                if self.kb.backend == "postgresql":
                    session.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:ledger))"), {"ledger": self.ledger}
                    )
                self._sync(session)
                entry = decide(self._entries)
                if entry is None:
                    return None
                row = BudgetEntry(ledger=self.ledger, **entry.model_dump())
                session.add(row)
                session.flush()  # assigns seq
                seq = row.seq
            # Committed: only now part of what this store has read.
            self._entries.append(entry)
            self._last_seq = seq
            return entry

    def _sync(self, session: Session) -> None:
        rows = session.exec(
            select(BudgetEntry)
            .where(BudgetEntry.ledger == self.ledger, BudgetEntry.seq > self._last_seq)
            .order_by(BudgetEntry.seq)
        ).all()
        parsed = []  # kept only once every new row has parsed: a damaged row stays reported
        for row in rows:
            try:
                parsed.append(LedgerEntry.model_validate(row.model_dump(exclude={"seq", "ledger"})))
            except ValidationError as error:
                detail = error.errors()[0]
                field = ".".join(str(part) for part in detail["loc"])
                raise LedgerError(
                    f"ledger {self.ledger!r} entry {row.seq} is damaged: {field}: {detail['msg']}"
                ) from None
        self._entries += parsed
        if rows:
            self._last_seq = rows[-1].seq
