"""The parent of every Docker and bwrap job: it runs the job as its child, kills it at the time
limit by itself, and reports the job's peak memory and CPU time.

In a container it is PID 1. discover's own timeout (`DockerBackend.execute`) fires first; this one
matters when the process that started the container is gone (killed, or a Ray worker that died),
which would otherwise leave the container running, holding its device, for as long as the code
inside chose. As PID 1 it cannot be killed from inside, and when it exits the kernel ends every
other process of the job. Under bwrap, whose own PID 1 would hide the job's memory from discover's
`wait4`, it runs as the job's user: a job that kills it fails, since bwrap reports its exit.

It also ends the job once the job's lease runs out (`lease.py`): the process waiting for the job
renews it, so a job whose orchestrator died ends within a lease's length.

The peak memory and CPU time come from the kernel (`waiting.py`), and are printed as the last line
of stdout once every other process of the job is dead, so the job cannot write after it
(`ACCOUNTING_LINE`). The CPU time is that of every process of the job: this process adopts the
job's orphans and reaps them all before it reports, so work left to a process the job never waited
for is counted too.
This process is not dumpable: the job's processes, though they may run as the same user, cannot
trace it or read its memory.

    python -m discover.sandbox.watchdog SECONDS LEASE_FILE COMMAND...
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from discover.sandbox.lease import read_lease
from discover.sandbox.waiting import Exited, wait_for_exit

ACCOUNTING_LINE = "discover-watchdog: peak memory MB, CPU s: "
WATCHDOG_MARGIN_S = 10.0  # its time limit, past discover's own
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
POLL_S = 1.0  # how often the lease is read
REAP_S = 5.0  # the longest it waits for the job's killed processes before it reports
EXIT_TIME_LIMIT, EXIT_LEASE_EXPIRED = 124, 125


class Accounting(NamedTuple):
    """The kernel's account of a finished job, as the watchdog's last line gives it."""

    peak_memory_mb: float
    cpu_time_s: float


def watched(python: str, timeout_s: float, lease: Path | str, command: list[str]) -> list[str]:
    """`command` run under the watchdog, whose own limit falls past discover's; `lease` is the
    lease file's path as the watchdog sees it. The watchdog runs in the job's own PID namespace."""
    limit = f"{timeout_s + WATCHDOG_MARGIN_S:g}"
    return [python, "-I", "-m", "discover.sandbox.watchdog", limit, str(lease), *command]


def watch(pid: int, limit_s: float, lease: Path) -> Exited | str:
    """Wait for the job to end by itself; else say why it must be ended now."""
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
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # The job's orphans become this process's children (under bwrap, not the sandbox's PID 1's),
    # so their CPU time joins this process's account of its children once it reaps them.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
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
    reap_all(REAP_S)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the job and every process it left
    print(f"\n{accounting_line(finished.peak_memory_mb, usage.ru_utime + usage.ru_stime)}", flush=True)
    code = finished.exit_code
    sys.exit(128 - code if code < 0 else code)  # killed by signal N: 128 + N, as a shell reports it


def reap_all(timeout_s: float) -> None:
    """Reap this process's children (the job's processes, killed) until none is left, or for at
    most `timeout_s`: the report must not wait on a process that will not die."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # none left
        if pid == 0:
            time.sleep(0.01)


def accounting_line(peak_memory_mb: float, cpu_time_s: float) -> str:
    return f"{ACCOUNTING_LINE}{peak_memory_mb:.1f} {cpu_time_s:.3f}"


def read_accounting(log: str) -> tuple[str, Accounting | None]:
    """The log without the watchdog's last line, and the peak memory and CPU time that line gives
    (None when the job's log does not end with it: the watchdog did not see the job end)."""
    head, _, last = log.rstrip("\n").rpartition("\n")
    if last.startswith(ACCOUNTING_LINE):
        with contextlib.suppress(ValueError):  # not two numbers
            peak_memory_mb, cpu_time_s = map(float, last.removeprefix(ACCOUNTING_LINE).split())
            return head, Accounting(peak_memory_mb, cpu_time_s)
    return log, None


if __name__ == "__main__":
    main()
