"""Waiting for a job's process: its exit code and the peak memory its parent measured.

Standard library only: the container watchdog (`watchdog.py`) imports it too. The peak comes from
`wait4`, the kernel's account of the child, so nothing the job writes can change it; it is the
peak resident set of the largest process in the job that was waited for (the job itself, unless a
child it started and reaped grew larger).
"""

from __future__ import annotations

import os
import select


def wait_for_exit(pid: int, timeout_s: float | None) -> tuple[int, float] | None:
    """Wait up to `timeout_s` for child `pid`, then reap it. Returns (exit code, negative for a
    signal, as subprocess reports it; peak resident set in MB), or None when it is still running
    at the timeout (then it is left unreaped)."""
    descriptor = os.pidfd_open(pid)  # readable once the process has exited (Linux 5.3)
    try:
        ready, _, _ = select.select([descriptor], [], [], timeout_s)
    finally:
        os.close(descriptor)
    if not ready:
        return None
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024  # Linux reports KiB
