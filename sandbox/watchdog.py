"""The parent of every Docker and bwrap job: it runs the job as its child, kills it at the time
limit by itself, and reports the job's peak memory.

In a container it is PID 1. discover's own timeout (`DockerBackend.execute`) fires first; this one
matters when the process that started the container is gone (killed, or a Ray worker that died),
which would otherwise leave the container running, holding its device, for as long as the code
inside chose. As PID 1 it cannot be killed from inside, and when it exits the kernel ends every
other process of the job. Under bwrap, whose own PID 1 would hide the job's memory from discover's
`wait4`, it runs as the job's user: a job that kills it fails, since bwrap reports its exit.

It also ends the job once the job's lease runs out (`lease.py`): the process waiting for the job
renews it, so a job whose orchestrator died ends within a lease's length.

The peak memory comes from the kernel (`waiting.py`), and is printed as the last line of stdout
once every other process of the job is dead, so the job cannot write after it (`PEAK_MEMORY_LINE`).
This process is not dumpable: the job's processes, though they may run as the same user, cannot
trace it or read its memory.

    python -m discover.sandbox.watchdog SECONDS LEASE_FILE COMMAND...
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from discover.sandbox.lease import read_lease
from discover.sandbox.waiting import wait_for_exit

PEAK_MEMORY_LINE = "discover-watchdog: peak memory MB "
WATCHDOG_MARGIN_S = 10.0  # its time limit, past discover's own
PR_SET_DUMPABLE = 4
POLL_S = 1.0  # how often the lease is read
EXIT_TIME_LIMIT, EXIT_LEASE_EXPIRED = 124, 125


def watched(python: str, timeout_s: float, lease: Path | str, command: list[str]) -> list[str]:
    """`command` run under the watchdog, whose own limit falls past discover's; `lease` is the
    lease file's path as the watchdog sees it. The watchdog runs in the job's own PID namespace."""
    limit = f"{timeout_s + WATCHDOG_MARGIN_S:g}"
    return [python, "-I", "-m", "discover.sandbox.watchdog", limit, str(lease), *command]


def watch(pid: int, limit_s: float, lease: Path) -> tuple[int, float] | str:
    """Wait for the job to end by itself: (exit code, peak MB); else why it must be ended now."""
    deadline = time.monotonic() + limit_s
    while (left := deadline - time.monotonic()) > 0:
        finished = wait_for_exit(pid, min(POLL_S, left))
        if finished is not None:
            return finished
        expires = read_lease(lease)
        if expires is not None and time.time() > expires:
            return "lease"
    return "limit"


def main() -> None:
    limit, lease, command = float(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    child = subprocess.Popen(command)
    finished = watch(child.pid, limit, lease)
    with contextlib.suppress(ProcessLookupError):  # none left
        os.kill(-1, signal.SIGKILL)  # every process of the job but this one
    if isinstance(finished, str):
        wait_for_exit(child.pid, None)
        if finished == "lease":
            print("watchdog: ended the job: whoever ran it is gone (its lease ran out)", file=sys.stderr)
            sys.exit(EXIT_LEASE_EXPIRED)
        print(f"watchdog: killed the job after {limit:g} s", file=sys.stderr)
        sys.exit(EXIT_TIME_LIMIT)
    code, peak_mb = finished
    print(f"\n{PEAK_MEMORY_LINE}{peak_mb:.1f}", flush=True)  # a new line, whatever the job left unfinished
    sys.exit(128 - code if code < 0 else code)  # killed by signal N: 128 + N, as a shell reports it


def read_peak_memory(log: str) -> tuple[str, float | None]:
    """The log without the watchdog's last line, and the peak memory that line gives (None when
    the job's log does not end with it: the watchdog did not see the job end)."""
    head, _, last = log.rstrip("\n").rpartition("\n")
    if last.startswith(PEAK_MEMORY_LINE):
        with contextlib.suppress(ValueError):
            return head, float(last.removeprefix(PEAK_MEMORY_LINE))
    return log, None


if __name__ == "__main__":
    main()
