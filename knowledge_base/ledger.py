"""The budget ledger kept in the knowledge base: the `LedgerStore` of `discover.sandbox.budget` over
the `budgetentry` table, so a study's accounts live beside its runs and reach every worker that
shares the database.

`transact` reads every entry and appends the decision inside one write transaction that excludes
other writers to this ledger: SQLite's BEGIN IMMEDIATE locks the database file; on PostgreSQL a
transaction-scoped advisory lock keyed by the ledger name serialises its writers.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, select

from discover.knowledge_base.schema import BudgetEntry
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.budget import Decide, LedgerEntry


class DatabaseLedgerStore:
    def __init__(self, kb: KnowledgeBase, ledger: str):
        self.kb = kb
        self.ledger = ledger

    def append(self, entry: LedgerEntry) -> None:
        self.transact(lambda _: entry)

    def entries(self) -> list[LedgerEntry]:
        with self.kb.reading() as session:
            return self._read(session)

    def transact(self, decide: Decide) -> LedgerEntry | None:
        with self.kb.writing() as session:
            if self.kb.backend == "postgresql":
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:ledger))"), {"ledger": self.ledger}
                )
            entry = decide(self._read(session))
            if entry is not None:
                session.add(BudgetEntry(ledger=self.ledger, **entry.model_dump()))
            return entry

    def _read(self, session: Session) -> list[LedgerEntry]:
        rows = session.exec(
            select(BudgetEntry).where(BudgetEntry.ledger == self.ledger).order_by(BudgetEntry.seq)
        )
        return [LedgerEntry.model_validate(row.model_dump(exclude={"seq", "ledger"})) for row in rows]
