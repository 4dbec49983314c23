"""A study's identity file, `study.json`, and the error every study command reports. Kept apart from
the runner so that reading a study (status, report, the live view) imports nothing heavy."""

from __future__ import annotations

from pydantic import BaseModel

RECORD_FILE = "study.json"


class StudyError(ValueError):
    """A study that cannot start or go on; the message is one line."""


class StudyRecord(BaseModel):
    study_id: str
    heldout_seed: int  # never passed to a job: MQAR's test set is drawn from it
    created_at: str
    budget: str | None = None  # of the latest `discover run` (a resume may raise it)
    task: str = "mqar"
