"""The budget ledger kept in the knowledge base: the `LedgerStore` of `discover.sandbox.budget` over
the `budgetentry` table, so a study's accounts live beside its runs and reach every worker that
shares the database.

`transact` reads the entries added since its last read and appends the decision inside one write
transaction that excludes other writers to this ledger: SQLite's BEGIN IMMEDIATE locks the
database file; on PostgreSQL a transaction-scoped advisory lock keyed by the ledger name serialises
its writers.
"""

from __future__ import annotations

import threading

from sqlalchemy import text
from sqlmodel import Session, select

from discover.knowledge_base.schema import BudgetEntry
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.budget import Decide, LedgerEntry


class DatabaseLedgerStore:
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
        for row in rows:
            self._entries.append(LedgerEntry.model_validate(row.model_dump(exclude={"seq", "ledger"})))
            self._last_seq = row.seq
