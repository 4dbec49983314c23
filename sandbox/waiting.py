"""Waiting for a job's process: its exit code, and the peak memory and CPU time its parent measured.

Standard library only: the container watchdog (`watchdog.py`) imports it too. Both measures come
from `wait4`, the kernel's account of the child, so nothing the job writes can change them. The
peak is the peak resident set of the largest process in the job that was waited for (the job
itself, unless a child it started and reaped grew larger); the CPU time is user plus system time
of the job's process, all its threads, and the children it reaped.
"""

from __future__ import annotations

import os
import select
from typing import NamedTuple


class Exited(NamedTuple):
    exit_code: int  # negative for a signal, as subprocess reports it
    peak_memory_mb: float
    cpu_time_s: float


def wait_for_exit(pid: int, timeout_s: float | None) -> Exited | None:
    """Wait up to `timeout_s` for child `pid`, then reap it; None when it is still running at the
    timeout (then it is left unreaped)."""
    descriptor = os.pidfd_open(pid)  # readable once the process has exited (Linux 5.3)
    try:
        ready, _, _ = select.select([descriptor], [], [], timeout_s)
    finally:
        os.close(descriptor)
    if not ready:
        return None
    _, status, usage = os.wait4(pid, 0)
    # Linux reports ru_maxrss in KiB.
    return Exited(os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)
