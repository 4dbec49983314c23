"""A study's identity file, `study.json`, and the error every study command reports. Kept apart from
the runner so that reading a study (status, report, the live view) imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from discover.budget.ledger import Budget

if TYPE_CHECKING:
    from discover.knowledge_base.store import KnowledgeBase

RECORD_FILE = "study.json"


class StudyError(ValueError):
    """A study that cannot start or go on; the message is one line."""


class StudyRecord(BaseModel):
    study_id: str
    heldout_seed: int  # never passed to a job: MQAR's test set is drawn from it
    created_at: str
    budget: Budget | None = None  # of the latest `discover run` (a resume may raise it); as text on file
    task: str = "mqar"
    proposer: str | None = None  # the latest run's, `auto` resolved: what a resumed `auto` keeps


def open_knowledge_base(folder: Path, **options: Any) -> KnowledgeBase:
    """The study's knowledge base. A damaged file, or one a newer discover wrote, is a StudyError
    (one line for the user), not a traceback."""
    from discover.knowledge_base.migrations import SchemaError
    from discover.knowledge_base.store import KnowledgeBase, StoreError

    try:
        return KnowledgeBase(folder / "knowledge.db", **options)
    except (StoreError, SchemaError) as exc:
        raise StudyError(str(exc)) from None
