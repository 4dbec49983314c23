"""The device pool: hands out GPUs (or, on a host without GPUs, CPU slots), one job per device.

Slots name host devices: "cuda:0", "cuda:3", "cuda:GPU-8f…" (a host GPU's index or UUID, which
every sandbox backend pins so that the job sees that GPU alone, as its first device) or "cpu:0".
Waiters are served first come, first served, so a job asking for several devices is not starved
by a stream of single-device jobs.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

SLOT_PATTERN = re.compile(r"(cuda|cpu):([A-Za-z0-9-]+)")


class PoolError(ValueError):
    """A pool that cannot be built, or a request it could never satisfy."""


def slot_device(slot: str) -> tuple[Literal["cpu", "cuda"], str | None]:
    """What a job on `slot` runs on, and the host GPU id its backend pins (None for a CPU slot).
    A bare "cpu" or "cuda" is the first of its kind."""
    kind, _, gpu = slot.partition(":")
    if kind == "cuda":
        return "cuda", gpu or "0"
    if kind == "cpu":
        return "cpu", None
    raise PoolError(f"device slot {slot!r} is not understood: use names like cuda:0 or cpu:0")


def visible_gpus(value: str) -> list[str]:
    """GPU ids listed in a CUDA_VISIBLE_DEVICES value. Like CUDA itself, stop at the first entry
    that is not an index or a GPU/MIG UUID ("-1" is the usual way of hiding every GPU)."""
    ids = []
    for item in value.split(","):
        item = item.strip()
        if not (item.isdigit() or item.startswith(("GPU-", "MIG-"))):
            break
        ids.append(item)
    return ids


class Lease:
    """Devices held by one job until `release()` (or the end of a `with` block)."""

    def __init__(self, pool: DevicePool, devices: list[str], kind: Literal["cuda", "cpu"]):
        self.devices = devices
        self.kind = kind
        self._pool = pool
        self._held = tuple(devices)  # what release() gives back, whatever happens to `devices`
        self.released = False  # guarded by the pool's lock

    def release(self) -> None:
        """Give the devices back. Calling it again does nothing: in particular it can never free
        a device that has since been leased to another job."""
        self._pool._give_back(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"Lease({self.devices}, {state})"


class DevicePool:
    def __init__(self, slots: list[str]):
        if not slots:
            raise PoolError("a device pool needs at least one slot")
        if len(set(slots)) != len(slots):
            raise PoolError(f"device slots repeat: {slots}")
        kinds = set()
        for slot in slots:
            match = SLOT_PATTERN.fullmatch(slot)
            if match is None:
                raise PoolError(f"device slot {slot!r} is not understood: use names like cuda:0 or cpu:0")
            kinds.add(match.group(1))
        if len(kinds) > 1:
            raise PoolError(f"a pool holds one kind of device, got {sorted(kinds)}")
        self.slots = list(slots)
        self.kind: Literal["cuda", "cpu"] = "cuda" if kinds == {"cuda"} else "cpu"
        self._busy: set[str] = set()
        self._queue: deque[object] = deque()  # one ticket per waiting acquire, oldest first
        self._cond = threading.Condition()

    @classmethod
    def detect(cls, cpu_slots: int = 1, max_gpus: int | None = None) -> DevicePool:
        """GPUs named by CUDA_VISIBLE_DEVICES if it is set, else every GPU torch sees (at most
        `max_gpus`); `cpu_slots` CPU slots when there are none."""
        if cpu_slots < 1:
            raise PoolError(f"cpu_slots must be at least 1, got {cpu_slots}")
        if max_gpus is not None and max_gpus < 0:
            raise PoolError(f"max_gpus must be at least 0, got {max_gpus}")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            gpus = visible_gpus(visible)
        else:
            import torch  # only here: building a pool from explicit slots needs no torch

            gpus = [str(index) for index in range(torch.cuda.device_count())]
        gpus = gpus[:max_gpus] if max_gpus is not None else gpus
        if gpus:
            return cls([f"cuda:{gpu}" for gpu in gpus])
        return cls([f"cpu:{index}" for index in range(cpu_slots)])

    @property
    def total(self) -> int:
        return len(self.slots)

    @property
    def free(self) -> int:
        with self._cond:
            return len(self.slots) - len(self._busy)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def acquire(self, count: int = 1, timeout: float | None = None) -> Lease | None:
        """Wait until `count` devices are free and this caller is first in line, then lease them.
        Returns None if `timeout` seconds pass first (None waits for ever, 0 only tries)."""
        if count < 1:
            raise PoolError(f"ask for at least one device, got {count}")
        if count > self.total:
            raise PoolError(f"asked for {count} devices but the pool has {self.total}: {self.slots}")
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                ready = self._cond.wait_for(
                    lambda: self._queue[0] is ticket and self.total - len(self._busy) >= count, timeout
                )
                if not ready:
                    return None
                devices = [slot for slot in self.slots if slot not in self._busy][:count]
                self._busy.update(devices)
                return Lease(self, devices, self.kind)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may now be served

    @contextmanager
    def lease(self, count: int = 1, timeout: float | None = None) -> Iterator[Lease]:
        """`with pool.lease(2) as lease:` — raises TimeoutError if no devices came in time."""
        held = self.acquire(count, timeout)
        if held is None:
            raise TimeoutError(f"no {count} free device(s) of {self.slots} within {timeout} s")
        with held:
            yield held

    def _give_back(self, lease: Lease) -> None:
        with self._cond:
            if lease.released:
                return
            lease.released = True
            self._busy.difference_update(lease._held)
            self._cond.notify_all()

    def __repr__(self) -> str:
        return f"DevicePool({self.slots}, free={self.free})"
