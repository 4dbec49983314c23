"""What a sandbox job reads and writes besides tensors: `job.json` in, `error.json` out.

The one definition of a job's spec. The host's `discover.sandbox.base.Job` extends `JobFile` with
what only the host needs (ids, limits, trust, mounts); only `JobFile`'s fields enter the job folder.
Kept apart from `job.py`, the entry point, so that the host imports it without torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

Action = Literal["check", "fit", "predict"]


class JobFile(BaseModel):
    action: Action
    task: str
    settings: dict[str, Any] = {}
    seed: int = 0
    # "cuda" is the first GPU the job sees: its sandbox shows it only the one GPU it was given
    # (`discover.sandbox.gpus`), so a job never names a host's device ordinal or UUID.
    device: Literal["cpu", "cuda"] = "cpu"


class JobError(BaseModel):
    reason: str
