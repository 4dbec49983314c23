"""The parent of every Docker and bwrap job: it runs the job as its child, kills it at the time
limit by itself, and reports the job's peak memory.

In a container it is PID 1. discover's own timeout (`DockerBackend.execute`) fires first; this one
matters when the process that started the container is gone (killed, or a Ray worker that died),
which would otherwise leave the container running, holding its device, for as long as the code
inside chose. As PID 1 it cannot be killed from inside, and when it exits the kernel ends every
other process of the job. Under bwrap, whose own PID 1 would hide the job's memory from discover's
`wait4`, it runs as the job's user: a job that kills it fails, since bwrap reports its exit.

The peak memory comes from the kernel (`waiting.py`), and is printed as the last line of stdout
once every other process of the job is dead, so the job cannot write after it (`PEAK_MEMORY_LINE`).
This process is not dumpable: the job's processes, though they may run as the same user, cannot
trace it or read its memory.

    python -m discover.sandbox.watchdog SECONDS COMMAND...
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

from discover.sandbox.waiting import wait_for_exit

PEAK_MEMORY_LINE = "discover-watchdog: peak memory MB "
WATCHDOG_MARGIN_S = 10.0  # its time limit, past discover's own
PR_SET_DUMPABLE = 4


def watched(python: str, timeout_s: float, command: list[str]) -> list[str]:
    """`command` run under the watchdog, whose own limit falls past discover's."""
    return [python, "-I", "-m", "discover.sandbox.watchdog", f"{timeout_s + WATCHDOG_MARGIN_S:g}", *command]


def main() -> None:
    limit, command = float(sys.argv[1]), sys.argv[2:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    child = subprocess.Popen(command)
    finished = wait_for_exit(child.pid, limit)
    with contextlib.suppress(ProcessLookupError):  # none left
        os.kill(-1, signal.SIGKILL)  # every process of the job but this one
    if finished is None:
        wait_for_exit(child.pid, None)
        print(f"watchdog: killed the job after {limit:g} s", file=sys.stderr)
        sys.exit(124)
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
