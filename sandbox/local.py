"""Running a job as a local child process: resource limits, a minimal environment, a hard timeout.

Shared by the `process` and `bwrap` backends; the container backend has Docker do the same.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from discover.experiments.files import data_cache
from discover.sandbox.base import Job
from discover.sandbox.gpus import pinned_environment
from discover.sandbox.pool import DevicePool
from discover.sandbox.waiting import wait_for_exit


def job_environment(job: Job, home: str) -> dict[str, str]:
    """Nothing from the host's environment: API keys and tokens never reach candidate code."""
    threads = str(max(1, int(job.limits.cpus)))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "USER": "sandbox",  # a job's uid may have no passwd entry; getpass reads these first
        "LOGNAME": "sandbox",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        # The path alone: a job is shown just the prepared folders it reads (`Task.prepare`).
        "DISCOVER_CACHE_DIR": str(data_cache()),
    }
    return env | pinned_environment(job.gpu)


PR_SET_PDEATHSIG = 1


def rlimits(job: Job, cgroup_procs: Path | None = None) -> Callable[[], None]:
    """Limits applied in the child just before it executes (inherited by everything it starts);
    with `cgroup_procs`, the child first joins that cgroup (`cgroup.py`). The child is killed when
    the thread that started it dies: a job of a killed orchestrator (or Ray worker) ends with it."""
    limits = job.limits
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)
        if cgroup_procs is not None:
            cgroup_procs.write_text(str(os.getpid()))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_mb << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids,) * 2)
        if job.device != "cuda":  # CUDA reserves far more address space than it uses
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2)

    return apply


class LogTail:
    """Drains a pipe in a thread, keeping only the last `limit` bytes, so a job that floods
    stdout can neither fill the disk nor block on a full pipe."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self.total_bytes = 0
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for chunk in iter(lambda: stream.read(65536), b""):
            self.total_bytes += len(chunk)
            self._chunks.append(chunk)
            self._size += len(chunk)
            while self._size - len(self._chunks[0]) >= self._limit:
                self._size -= len(self._chunks.popleft())

    def text(self, join_timeout: float = 5.0) -> str:
        self._thread.join(join_timeout)
        data = b"".join(self._chunks)[-self._limit :]
        return data.decode(errors="replace")


RUNNING: set[int] = set()  # process groups of the jobs running now, for `kill_running_jobs`


class LocalBackend:
    """What backends that run jobs as children of this process share: the host's devices, and
    killing the jobs still running when a study must stop now."""

    def reap(self, study_id: str | None = None, job_id: str | None = None) -> int:
        return 0  # local jobs die with the run that started them

    def kill_all(self) -> None:
        kill_running_jobs()

    def pool(self, cpu_slots: int) -> DevicePool:
        return DevicePool.detect(cpu_slots=cpu_slots)


def kill_running_jobs() -> None:
    """Kill every local job still running (a study told to stop now). Jobs run in sessions of their
    own, so they would not die with discover."""
    for group in list(RUNNING):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


@dataclass
class LocalExit:
    exit_code: int | None  # None: killed at the time limit
    log: str
    wall_time_s: float
    peak_memory_mb: float | None  # measured by this process (`waiting.py`); None after a timeout
    cpu_time_s: float | None  # likewise


def run_local(
    command: list[str], job: Job, env: dict[str, str], cgroup_procs: Path | None = None
) -> LocalExit:
    """Run in a new session and kill the whole process group at the timeout and at the end."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=rlimits(job, cgroup_procs),
        env=env,
    )
    RUNNING.add(process.pid)
    assert process.stdout is not None
    tail = LogTail(process.stdout, job.limits.log_kb * 1024)
    finished = wait_for_exit(process.pid, job.limits.timeout_s)
    with contextlib.suppress(ProcessLookupError):  # children left in the group, finished job or not
        os.killpg(process.pid, signal.SIGKILL)
    if finished is None:
        wait_for_exit(process.pid, None)  # reap the killed job
    exit_code, peak_memory_mb, cpu_time_s = finished or (None, None, None)
    process.returncode = -1 if exit_code is None else exit_code  # reaped here, not by Popen
    RUNNING.discard(process.pid)
    return LocalExit(exit_code, tail.text(), time.perf_counter() - started, peak_memory_mb, cpu_time_s)


def python_command(job_dir: Path | str, out_dir: Path | str, python: str = sys.executable) -> list[str]:
    # -I: ignore PYTHON* variables and the user's site folder; keep the current directory off sys.path.
    return [python, "-I", "-m", "discover.experiments.job", str(job_dir), str(out_dir)]
