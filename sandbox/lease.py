"""A job's lease: how a job learns that the process that started it is gone.

Every job folder has a small `lease` file beside job/ and out/ holding the time (Unix seconds) until
which the job may run. The process waiting for the job renews it every `RENEW_S` while the job runs
(`LeaseKeeper`); the job's watchdog (`watchdog.py`), which sees the file read-only at /lease, ends
the job once the time has passed. So a job whose orchestrator was killed (SIGKILL, a machine
running out of memory, a Ray worker that died) ends within `LEASE_S`, on every backend, instead of
at its own time limit, hours later.

Standard library only: the watchdog imports it inside the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LEASE_FILE = "lease"  # beside a job's job/ and out/ folders
LEASE_S = 30.0  # a job whose lease was not renewed for this long is ended
RENEW_S = 5.0
WIDTH = 20  # fixed: each renewal overwrites the same bytes in place, so a reader never sees a mix


def write_lease(path: Path, expires_at: float) -> None:
    """Set the lease's expiry in place (same file, same inode: a bind mount of it stays current)."""
    data = f"{expires_at:{WIDTH}.3f}\n".encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(descriptor, data, 0)
    finally:
        os.close(descriptor)


def read_lease(path: Path) -> float | None:
    """The lease's expiry; None when the file cannot be read as one (the watchdog then keeps to the
    job's time limit)."""
    try:
        return float(path.read_bytes()[: WIDTH + 1])
    except (OSError, ValueError):
        return None


class LeaseKeeper:
    """Renews the leases of this process's running jobs from one background thread. Nothing else
    renews them, so when this process dies every lease it held runs out."""

    def __init__(self, lease_s: float = LEASE_S, renew_s: float = RENEW_S) -> None:
        self.lease_s, self.renew_s = lease_s, renew_s
        self._held: set[Path] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def hold(self, path: Path) -> Iterator[None]:
        """Keep `path` renewed while the block runs (the job runs)."""
        write_lease(path, time.time() + self.lease_s)
        with self._lock:
            self._held.add(path)
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew, name="discover-leases", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(path)

    def _renew(self) -> None:
        while True:
            time.sleep(self.renew_s)
            with self._lock:
                held = list(self._held)
            for path in held:
                with contextlib.suppress(OSError):  # the job's folder was removed under it
                    write_lease(path, time.time() + self.lease_s)


LEASES = LeaseKeeper()  # this process's leases
