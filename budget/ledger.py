"""The budget and the ledger that spends it.

Budgets are in device-time: one device (a GPU, or a CPU slot on a host without GPUs) busy for one
second costs one device-second. A job's cost is its measured wall time times the devices it held.

The ledger is an append-only log of three kinds of entry:

    reserve  job admitted with an estimated cost; it counts against the budget until settled
    charge   job finished or failed; its measured cost replaces the reservation
    release  job never started, or its machine died under it; its reservation is dropped and
             nothing is charged. A released job may be reserved again: that is its retry.

    left = total - sum(charges) - sum(outstanding reservations)

`replay` is the one place that arithmetic lives: `Ledger` keeps its accounts with it, and every
reader of a ledger (`discover status`, the report) goes through it, so none can disagree with the
ledger. Every decision (admit a job, settle it) is taken under the store's exclusive lock against
every entry written so far, by any process, so several processes sharing one ledger cannot
over-commit the budget together or settle one job twice.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

# ----------------------------------------------------------------------------- the budget

UNIT_SECONDS = {"gpuh": 3600.0, "h": 3600.0, "gpum": 60.0, "m": 60.0}
# ASCII digits only (`\d` would accept other scripts' digits); no exponents, signs, nan or inf.
BUDGET_PATTERN = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(gpuh|gpum|h|m)\s*", re.IGNORECASE)
BUDGET_HINT = "write a number and a unit, e.g. 200gpuh, 90gpum, 2h or 30m"


class BudgetError(ValueError):
    """A budget string that cannot be used; the message is one line, fit to show a user."""


class Budget(BaseModel):
    """A budget, parsed once from what the user wrote. As a field of a configuration or record it
    is read from that text and written back as it, so files keep the user's words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str  # as the user wrote it, for messages and records
    device_seconds: float = Field(gt=0, allow_inf_nan=False)

    @property
    def device_hours(self) -> float:
        return self.device_seconds / 3600.0

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"text": data, "device_seconds": budget_seconds(data)}
        if not isinstance(data, dict | Budget):  # a number in a TOML file, say: say what would work
            raise BudgetError(f"budget {data!r} is not understood: {BUDGET_HINT}")
        return data

    @model_serializer
    def _as_text(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def budget_seconds(text: str) -> float:
    """The device-seconds of a budget string; BudgetError when it cannot be used."""
    match = BUDGET_PATTERN.fullmatch(text)
    if match is None:
        raise BudgetError(f"budget {text!r} is not understood: {BUDGET_HINT}")
    number, unit = match.groups()
    seconds = float(number) * UNIT_SECONDS[unit.lower()]
    if not math.isfinite(seconds):
        raise BudgetError(f"budget {text!r} is too large: {BUDGET_HINT}")
    if seconds <= 0:
        raise BudgetError(f"budget {text!r} must be more than zero: {BUDGET_HINT}")
    return seconds


def parse_budget(text: str) -> Budget:
    """`200gpuh`, `90gpum`, `2h`, `30m`, `1.5h`: device-hours or device-minutes.

    On a CPU-only host a CPU slot is the device, so `2h` and `2gpuh` are the same device-time."""
    return Budget(text=text, device_seconds=budget_seconds(text))


# ----------------------------------------------------------------------------- entries and stores


class LedgerError(RuntimeError):
    """A ledger operation that would corrupt the accounts, or a ledger history that is damaged."""


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
    """Where ledger entries live (`discover.budget.store.DatabaseLedgerStore`)."""

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


# ----------------------------------------------------------------------------- the replay


class Accounts:
    """What a ledger's entries add up to: the only implementation of the ledger's arithmetic.

    Built by `replay`, or kept up to date with `catch_up` as a store's history grows. Sums use
    `math.fsum`, exact whatever the order or number of entries, so every process agrees."""

    def __init__(self) -> None:
        self.applied = 0  # entries folded in so far
        self.outstanding: dict[str, float] = {}  # job_id -> reserved seconds, until settled
        self.charged: dict[str, float] = {}  # job_id -> measured seconds, in the order charged
        self.released: set[str] = set()  # released and not reserved again
        self.keys: dict[str, str] = {}  # job_id -> its estimator key

    def apply(self, entry: LedgerEntry) -> None:
        """Fold in the next entry; LedgerError when the history is inconsistent."""
        job = entry.job_id
        if entry.op == "reserve":
            if job in self.outstanding or job in self.charged:
                raise LedgerError(f"ledger is inconsistent: job {job!r} is reserved twice")
            self.released.discard(job)  # a retry of a released job
            self.outstanding[job] = entry.seconds
            self.keys[job] = entry.key
        elif job not in self.outstanding:
            raise LedgerError(f"ledger is inconsistent: {entry.op} of job {job!r}, which is not reserved")
        else:
            del self.outstanding[job]
            if entry.op == "charge":
                self.charged[job] = entry.seconds
            else:
                self.released.add(job)
        self.applied += 1  # only once folded in: an inconsistent entry stays reported

    def catch_up(self, entries: Sequence[LedgerEntry]) -> None:
        """Fold in the entries after those already applied; `entries` is the whole history so far."""
        for entry in entries[self.applied :]:
            self.apply(entry)

    @property
    def spent(self) -> float:
        return math.fsum(self.charged.values())

    @property
    def reserved(self) -> float:
        """Held by jobs admitted and not yet settled."""
        return math.fsum(self.outstanding.values())

    def left(self, total: Budget) -> float:
        terms = [total.device_seconds]
        terms += [-s for s in self.charged.values()] + [-s for s in self.outstanding.values()]
        return math.fsum(terms)

    def used(self, job_id: str) -> bool:
        """Whether a reservation of this id would be refused: outstanding or charged."""
        return job_id in self.charged or job_id in self.outstanding

    def settled_how(self, job_id: str) -> Literal["charged", "released"] | None:
        if job_id in self.charged:
            return "charged"
        if job_id in self.released:
            return "released"
        return None

    def costs(self) -> list[tuple[str, float]]:
        """(key, measured seconds) of every charged job, oldest first."""
        return [(self.keys.get(job, ""), seconds) for job, seconds in self.charged.items()]


def replay(entries: Iterable[LedgerEntry]) -> Accounts:
    """The accounts a ledger's history adds up to; LedgerError when it is inconsistent."""
    accounts = Accounts()
    for entry in entries:
        accounts.apply(entry)
    return accounts


# ----------------------------------------------------------------------------- the ledger


class Ledger:
    """The budget's accounts, replayed from a store and kept in step with it on every call."""

    def __init__(self, total: Budget, store: LedgerStore):
        self.total = total
        self.store = store
        self._lock = threading.RLock()
        self._accounts = Accounts()
        self._refresh()  # replay now, so a damaged ledger fails at start, not mid-run

    # -- the three operations

    def reserve(self, job_id: str, estimate_device_seconds: float, key: str = "") -> bool:
        """Admit a job if its estimate fits in what is left. A refused job leaves no trace."""
        return self.reserve_allowance(job_id, estimate_device_seconds, key) > 0

    def reserve_allowance(
        self, job_id: str, estimate_device_seconds: float, key: str = "", share: float = 0.0
    ) -> float:
        """Admit a job if its estimate fits in what is left, holding its estimate plus `share` of
        the rest: the most the job may spend (its time limit comes from it), so jobs admitted
        together can never spend more than the budget. Returns what was reserved; 0.0 when
        refused, which leaves no trace."""
        estimate = float(estimate_device_seconds)
        if not (math.isfinite(estimate) and estimate > 0):
            raise ValueError(f"estimate for job {job_id!r} must be a positive number, got {estimate}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share of the budget left must be between 0 and 1, got {share}")

        def decide(entries: Sequence[LedgerEntry]) -> LedgerEntry | None:
            self._accounts.catch_up(entries)
            if self._accounts.used(job_id):
                raise LedgerError(f"job {job_id!r} is already in the ledger; job ids are used once")
            left = self._accounts.left(self.total)
            if estimate > left:
                return None
            allowance = estimate + share * (left - estimate)
            return LedgerEntry(op="reserve", job_id=job_id, seconds=allowance, key=key)

        with self._lock:
            entry = self.store.transact(decide)
        return 0.0 if entry is None else entry.seconds

    def charge(self, job_id: str, wall_seconds: float, devices: int) -> float:
        """Settle a job that ran, whether it finished or failed: charge what it used
        (wall_seconds * devices), however that compares with its reservation. Returns the charge."""
        wall = float(wall_seconds)
        if not (math.isfinite(wall) and wall >= 0):
            raise ValueError(f"wall time of job {job_id!r} must be a number >= 0, got {wall}")
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise ValueError(f"devices of job {job_id!r} must be a whole number >= 1, got {devices!r}")

        def decide(entries: Sequence[LedgerEntry]) -> LedgerEntry:
            self._accounts.catch_up(entries)
            self._require_outstanding(job_id, "charge")
            return LedgerEntry(
                op="charge", job_id=job_id, seconds=wall * devices, wall_seconds=wall,
                devices=devices, key=self._accounts.keys.get(job_id, ""),
            )  # fmt: skip

        with self._lock:
            entry = self.store.transact(decide)
            assert entry is not None
            return entry.seconds

    def release(self, job_id: str) -> None:
        """Drop the reservation of a job that never started (or was lost with its machine);
        nothing is charged, and the job may be reserved again."""

        def decide(entries: Sequence[LedgerEntry]) -> LedgerEntry:
            self._accounts.catch_up(entries)
            self._require_outstanding(job_id, "release")
            return LedgerEntry(op="release", job_id=job_id, key=self._accounts.keys.get(job_id, ""))

        with self._lock:
            self.store.transact(decide)

    # -- what the accounts say now (including other processes' entries)

    @property
    def spent(self) -> float:
        with self._lock:
            return self._refresh().spent

    @property
    def reserved(self) -> float:
        with self._lock:
            return self._refresh().reserved

    @property
    def left(self) -> float:
        with self._lock:
            return self._refresh().left(self.total)

    def used(self, job_id: str) -> bool:
        """Whether `reserve` would refuse this id: the job is outstanding or was charged."""
        with self._lock:
            return self._refresh().used(job_id)

    def outstanding(self) -> dict[str, float]:
        with self._lock:
            return dict(self._refresh().outstanding)

    def costs(self) -> list[tuple[str, float]]:
        """(key, measured seconds) of every charged job, oldest first: feeds a `CostEstimator`
        on resume."""
        with self._lock:
            return self._refresh().costs()

    # -- keeping up with the store

    def _refresh(self) -> Accounts:
        self._accounts.catch_up(self.store.entries())
        return self._accounts

    def _require_outstanding(self, job_id: str, op: str) -> None:
        if job_id in self._accounts.outstanding:
            return
        how = self._accounts.settled_how(job_id)
        if how is None:
            raise LedgerError(f"cannot {op} job {job_id!r}: it has no reservation in the ledger")
        raise LedgerError(f"cannot {op} job {job_id!r}: it was already {how}")
