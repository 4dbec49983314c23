"""The compute budget: parsing `--budget`, the persistent ledger that spends it, and cost estimates.

Budgets are in device-time: one device (a GPU, or a CPU slot on a host without GPUs) busy for one
second costs one device-second. A job's cost is its measured wall time times the devices it held.

The ledger is an append-only log of three kinds of entry:

    reserve  job admitted with an estimated cost; it counts against the budget until settled
    charge   job finished or failed; its measured cost replaces the reservation
    release  job never started, or its machine died under it; its reservation is dropped and
             nothing is charged. A released job may be reserved again: that is its retry.

    left = total - sum(charges) - sum(outstanding reservations)

Every decision (admit a job, settle it) is taken under the store's exclusive lock against every
entry written so far, by any process, so several processes sharing one ledger cannot over-commit
the budget together or settle one job twice.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# ----------------------------------------------------------------------------- parsing --budget

UNIT_SECONDS = {"gpuh": 3600.0, "h": 3600.0, "gpum": 60.0, "m": 60.0}
# ASCII digits only (`\d` would accept other scripts' digits); no exponents, signs, nan or inf.
BUDGET_PATTERN = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(gpuh|gpum|h|m)\s*", re.IGNORECASE)
BUDGET_HINT = "write a number and a unit, e.g. 200gpuh, 90gpum, 2h or 30m"


class BudgetError(ValueError):
    """A budget string that cannot be used; the message is one line, fit to show a user."""


class Budget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str  # as the user wrote it, for messages and records
    device_seconds: float = Field(gt=0, allow_inf_nan=False)

    @property
    def device_hours(self) -> float:
        return self.device_seconds / 3600.0


def parse_budget(text: str) -> Budget:
    """`200gpuh`, `90gpum`, `2h`, `30m`, `1.5h`: device-hours or device-minutes.

    On a CPU-only host a CPU slot is the device, so `2h` and `2gpuh` are the same device-time."""
    match = BUDGET_PATTERN.fullmatch(text)
    if match is None:
        raise BudgetError(f"budget {text!r} is not understood: {BUDGET_HINT}")
    number, unit = match.groups()
    seconds = float(number) * UNIT_SECONDS[unit.lower()]
    if not math.isfinite(seconds):
        raise BudgetError(f"budget {text!r} is too large: {BUDGET_HINT}")
    if seconds <= 0:
        raise BudgetError(f"budget {text!r} must be more than zero: {BUDGET_HINT}")
    return Budget(text=text, device_seconds=seconds)


# ----------------------------------------------------------------------------- the ledger store


class LedgerError(RuntimeError):
    """A ledger operation that would corrupt the accounts, or a ledger file that is damaged."""


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["reserve", "charge", "release"]
    job_id: str = Field(min_length=1)
    seconds: float = Field(default=0.0, ge=0, allow_inf_nan=False)  # reserve: estimate; charge: cost
    wall_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)  # charge only
    devices: int | None = Field(default=None, ge=1)  # charge only
    key: str = ""  # kind of job, e.g. "mqar/train", so estimates can be rebuilt from the ledger
    at: float = Field(default_factory=time.time)  # unix time, for the record only


Decide = Callable[[Sequence[LedgerEntry]], LedgerEntry | None]


class LedgerStore(Protocol):
    """Where ledger entries live. A database-backed store implements the same three calls."""

    def append(self, entry: LedgerEntry) -> None:
        """Durably add one entry after all others."""
        ...

    def entries(self) -> Sequence[LedgerEntry]:
        """Every entry, oldest first. Later calls return the same entries, plus any new ones."""
        ...

    def transact(self, decide: Decide) -> LedgerEntry | None:
        """Atomically: show `decide` every entry so far, and append what it returns (if not None).
        No other writer, in any process, may append in between. Exceptions from `decide` propagate
        and append nothing."""
        ...


class JsonlLedgerStore:
    """One JSON object a line, appended under an exclusive `flock` and fsync'ed before returning.

    Several processes (and threads) may share one file. A writer killed mid-write can leave at
    most a torn last line, which never returned to its caller: readers ignore it and the next
    writer cuts it off before appending."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Entries parsed so far and the byte offset they end at; the file only grows, so each
        # sync reads just the new bytes.
        self._entries: list[LedgerEntry] = []
        self._offset = 0
        self._lines = 0
        # flock excludes other open files, not other threads using this object's cache.
        self._mutex = threading.Lock()
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644))
            self._fsync_dir()

    def append(self, entry: LedgerEntry) -> None:
        self.transact(lambda _: entry)

    def entries(self) -> list[LedgerEntry]:
        with self._mutex, self._open(os.O_RDONLY, fcntl.LOCK_SH) as fd:
            self._sync(fd, writer=False)
            return list(self._entries)

    def transact(self, decide: Decide) -> LedgerEntry | None:
        with self._mutex, self._open(os.O_RDWR | os.O_APPEND, fcntl.LOCK_EX) as fd:
            self._sync(fd, writer=True)
            entry = decide(self._entries)
            if entry is None:
                return None
            line = (json.dumps(entry.model_dump(exclude_none=True), allow_nan=False) + "\n").encode()
            view = memoryview(line)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            self._entries.append(entry)
            self._offset += len(line)
            self._lines += 1
            return entry

    def _open(self, flags: int, lock: int) -> _LockedFile:
        return _LockedFile(self.path, flags, lock)

    def _sync(self, fd: int, writer: bool) -> None:
        """Parse the lines other writers added since the last sync (the caller holds the lock)."""
        size = os.fstat(fd).st_size
        if size < self._offset:
            raise LedgerError(f"ledger {self.path} shrank from {self._offset} to {size} bytes")
        data = os.pread(fd, size - self._offset, self._offset)
        complete = data.rfind(b"\n") + 1
        lines = data[:complete].split(b"\n")[:-1]
        parsed = []  # committed to the cache only once every new line has parsed
        for number, raw in enumerate(lines, start=self._lines + 1):
            if not raw.strip():
                continue
            try:
                parsed.append(LedgerEntry.model_validate(json.loads(raw)))
            except (ValueError, ValidationError) as error:
                first = str(error).splitlines()[0]
                raise LedgerError(f"ledger {self.path} line {number} is damaged: {first}") from None
        self._entries += parsed
        self._lines += len(lines)
        self._offset += complete
        if writer and complete < len(data):
            os.ftruncate(fd, self._offset)  # a torn line from a killed writer; it never returned

    def _fsync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _LockedFile:
    """Open a file and hold a flock on it for the duration of a `with` block."""

    def __init__(self, path: Path, flags: int, lock: int):
        self.fd = os.open(path, flags)
        try:
            fcntl.flock(self.fd, lock)
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing drops the flock


# ----------------------------------------------------------------------------- the ledger


class Ledger:
    """The budget's accounts, replayed from a store and kept in step with it on every call."""

    def __init__(self, total: Budget, store: LedgerStore):
        self.total = total
        self.store = store
        self._lock = threading.RLock()
        self._applied = 0  # entries of the store already folded into the fields below
        self._outstanding: dict[str, float] = {}  # job_id -> reserved seconds
        self._charged: dict[str, float] = {}  # job_id -> measured seconds
        self._released: set[str] = set()
        self._keys: dict[str, str] = {}
        self._refresh()  # replay now, so a damaged ledger fails at start, not mid-run

    # -- the three operations

    def reserve(self, job_id: str, estimate_device_seconds: float, key: str = "") -> bool:
        """Admit a job if its estimate fits in what is left. A refused job leaves no trace."""
        estimate = float(estimate_device_seconds)
        if not (math.isfinite(estimate) and estimate > 0):
            raise ValueError(f"estimate for job {job_id!r} must be a positive number, got {estimate}")

        def decide(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
            self._catch_up(entries)
            if self._used(job_id):
                raise LedgerError(f"job {job_id!r} is already in the ledger; job ids are used once")
            if estimate > self._left():
                return None
            return LedgerEntry(op="reserve", job_id=job_id, seconds=estimate, key=key)

        with self._lock:
            return self.store.transact(decide) is not None

    def charge(self, job_id: str, wall_seconds: float, devices: int) -> float:
        """Settle a job that ran, whether it finished or failed: charge what it used
        (wall_seconds * devices), however that compares with its reservation. Returns the charge."""
        wall = float(wall_seconds)
        if not (math.isfinite(wall) and wall >= 0):
            raise ValueError(f"wall time of job {job_id!r} must be a number >= 0, got {wall}")
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise ValueError(f"devices of job {job_id!r} must be a whole number >= 1, got {devices!r}")

        def decide(entries: Sequence[LedgerEntry]) -> LedgerEntry:
            self._catch_up(entries)
            self._require_outstanding(job_id, "charge")
            return LedgerEntry(
                op="charge", job_id=job_id, seconds=wall * devices, wall_seconds=wall,
                devices=devices, key=self._keys.get(job_id, ""),
            )  # fmt: skip

        with self._lock:
            entry = self.store.transact(decide)
            assert entry is not None
            return entry.seconds

    def release(self, job_id: str) -> None:
        """Drop the reservation of a job that never started (or was lost with its machine);
        nothing is charged, and the job may be reserved again."""

        def decide(entries: Sequence[LedgerEntry]) -> LedgerEntry:
            self._catch_up(entries)
            self._require_outstanding(job_id, "release")
            return LedgerEntry(op="release", job_id=job_id, key=self._keys.get(job_id, ""))

        with self._lock:
            self.store.transact(decide)

    # -- what the accounts say now (including other processes' entries)

    @property
    def spent(self) -> float:
        with self._lock:
            self._refresh()
            return math.fsum(self._charged.values())

    @property
    def reserved(self) -> float:
        with self._lock:
            self._refresh()
            return math.fsum(self._outstanding.values())

    @property
    def left(self) -> float:
        with self._lock:
            self._refresh()
            return self._left()

    def used(self, job_id: str) -> bool:
        """Whether `reserve` would refuse this id: the job is outstanding or was charged."""
        with self._lock:
            self._refresh()
            return self._used(job_id)

    def outstanding(self) -> dict[str, float]:
        with self._lock:
            self._refresh()
            return dict(self._outstanding)

    def costs(self) -> list[tuple[str, float]]:
        """(key, measured seconds) of every charged job, oldest first: feeds a `CostEstimator`
        on resume."""
        with self._lock:
            self._refresh()
            return [(self._keys.get(job, ""), seconds) for job, seconds in self._charged.items()]

    # -- replay

    def _refresh(self) -> None:
        self._catch_up(self.store.entries())

    def _catch_up(self, entries: Sequence[LedgerEntry]) -> None:
        for entry in entries[self._applied :]:
            self._apply(entry)
            self._applied += 1

    def _apply(self, entry: LedgerEntry) -> None:
        job = entry.job_id
        if entry.op == "reserve":
            if job in self._outstanding or self._settled_how(job) == "charged":
                raise LedgerError(f"ledger is inconsistent: job {job!r} is reserved twice")
            self._released.discard(job)  # a retry of a released job
            self._outstanding[job] = entry.seconds
            self._keys[job] = entry.key
            return
        if job not in self._outstanding:
            raise LedgerError(f"ledger is inconsistent: {entry.op} of job {job!r}, which is not reserved")
        del self._outstanding[job]
        if entry.op == "charge":
            self._charged[job] = entry.seconds
        else:
            self._released.add(job)

    def _left(self) -> float:
        # fsum: exact whatever the order or number of entries, so every process agrees on `left`.
        terms = [self.total.device_seconds]
        terms += [-s for s in self._charged.values()] + [-s for s in self._outstanding.values()]
        return math.fsum(terms)

    def _used(self, job_id: str) -> bool:
        return self._settled_how(job_id) == "charged" or job_id in self._outstanding

    def _settled_how(self, job_id: str) -> str | None:
        if job_id in self._charged:
            return "charged"
        if job_id in self._released:
            return "released"
        return None

    def _require_outstanding(self, job_id: str, op: str) -> None:
        if job_id in self._outstanding:
            return
        how = self._settled_how(job_id)
        if how is None:
            raise LedgerError(f"cannot {op} job {job_id!r}: it has no reservation in the ledger")
        raise LedgerError(f"cannot {op} job {job_id!r}: it was already {how}")


# ----------------------------------------------------------------------------- cost estimates


class CostEstimator:
    """Expected device-seconds of a job: the running mean of measured costs of jobs with the same
    key (e.g. "mqar/train"), or the task's default before any was measured, times a safety margin
    so that estimates err towards reserving too much."""

    def __init__(self, default_seconds: float, margin: float = 1.2):
        if not (math.isfinite(default_seconds) and default_seconds > 0):
            raise ValueError(f"default cost must be a positive number of seconds, got {default_seconds}")
        if not (math.isfinite(margin) and margin > 0):
            raise ValueError(f"safety margin must be a positive number, got {margin}")
        self.default_seconds = default_seconds
        self.margin = margin
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def observe(self, key: str, device_seconds: float) -> None:
        if not (math.isfinite(device_seconds) and device_seconds >= 0):
            raise ValueError(f"measured cost must be a number of seconds >= 0, got {device_seconds}")
        self._sums[key] = self._sums.get(key, 0.0) + device_seconds
        self._counts[key] = self._counts.get(key, 0) + 1

    def mean(self, key: str) -> float | None:
        count = self._counts.get(key, 0)
        return self._sums[key] / count if count else None

    def estimate(self, key: str, default: float | None = None) -> float:
        """`default` overrides the constructor's default for this key's first jobs."""
        mean = self.mean(key)
        if mean is None:
            mean = self.default_seconds if default is None else default
        return mean * self.margin
