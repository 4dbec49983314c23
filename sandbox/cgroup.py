"""A memory cgroup per job, for the local backends: the job's processes together are bounded.

RLIMIT_AS bounds each process alone, so a job that splits its memory over several processes holds
several times its limit. Where discover may create cgroups (root, with the cgroup v1 memory
controller mounted, as on this project's CI machines) a bwrap job runs in a cgroup of its own,
nested in discover's: the kernel's OOM killer ends the job's processes once together they pass
`memory_mb` (swap included), and every process left in it is killed when the job ends. Elsewhere
(a normal user, or a cgroup v2 host) `JobCgroup.create` returns None and the per-process limit is
all there is; Docker jobs always get the engine's own cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

MEMORY_MOUNT = Path("/sys/fs/cgroup/memory")  # cgroup v1's memory hierarchy
PREFIX = "discover-job-"


def own_memory_cgroup() -> Path | None:
    """The folder of this process's memory cgroup, when the v1 hierarchy is mounted and writable."""
    if os.geteuid() != 0 or not (MEMORY_MOUNT / "memory.limit_in_bytes").is_file():
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = MEMORY_MOUNT / path.lstrip("/")
            return folder if folder.is_dir() else MEMORY_MOUNT
    return None


class JobCgroup:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def create(cls, study_id: str, job_id: str, memory_mb: int) -> JobCgroup | None:
        parent = own_memory_cgroup()
        if parent is None:
            return None
        folder = parent / f"{PREFIX}{study_id}-{job_id}"
        try:
            folder.mkdir()
            limit = str(memory_mb << 20)
            (folder / "memory.limit_in_bytes").write_text(limit)
            swap = folder / "memory.memsw.limit_in_bytes"  # memory plus swap; absent without swap accounting
            if swap.is_file():
                swap.write_text(limit)
        except OSError:
            with contextlib.suppress(OSError):
                folder.rmdir()
            return None
        return cls(folder)

    @property
    def procs(self) -> Path:
        """Writing a pid here moves that process (and what it starts from then on) into the cgroup."""
        return self.folder / "cgroup.procs"

    def oom_kills(self) -> int:
        """How many of the job's processes the kernel killed for passing the limit."""
        for line in (self.folder / "memory.oom_control").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        """Kill whatever is still in the cgroup, then remove it."""
        for _ in range(50):
            pids = [int(pid) for pid in self.procs.read_text().split()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            self.folder.rmdir()


def remove_leftovers(study_id: str) -> int:
    """Remove the empty job cgroups a killed run of this study left behind; returns how many."""
    parent = own_memory_cgroup()
    removed = 0
    for folder in parent.glob(f"{PREFIX}{study_id}-*") if parent else []:
        with contextlib.suppress(OSError):  # one still in use stays
            folder.rmdir()
            removed += 1
    return removed
