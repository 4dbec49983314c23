"""The `bwrap` backend: bubblewrap namespaces for hosts without a Docker engine.

New network, pid, ipc and uts namespaces (no network at all), every capability dropped, the job
running unprivileged (nobody in a user namespace when run by a normal user; a host uid of its own
when run by root), a read-only root with the host's runtime bound read-only, a size-limited tmpfs as
scratch, the job folder read-only and the output folder writable; the sandbox dies with its
parent, and rlimits bound memory, processes and files. Run by root on a cgroup v1 host, the job's
processes together are bounded too (`cgroup.py`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from discover.sandbox.backends import BackendOptions
from discover.sandbox.base import Job, JobOutcome, hidden_mounts, lease_path
from discover.sandbox.cgroup import JobCgroup, remove_leftovers
from discover.sandbox.gpus import GpuNotFound, device_nodes
from discover.sandbox.local import LocalBackend, job_environment, python_command, run_local
from discover.sandbox.process import outcome
from discover.sandbox.runtime import host_runtime_paths
from discover.sandbox.watchdog import read_accounting, watched

SYSTEM_PATHS = ("/usr", "/etc/ld.so.cache", "/etc/alternatives", "/etc/ssl", "/etc/localtime")
SANDBOX_UID = 65534  # nobody, inside the user namespace of a bwrap run by a normal user
# Run by root, each job gets a host uid of its own, owning nothing and unknown to the system, so
# the process limit (counted per uid) is per job and no two jobs can reach each other's files.
JOB_UIDS = (1_000_000, 1_000_000)  # first, how many


def job_uid(job_id: str) -> int:
    first, count = JOB_UIDS
    return first + int(hashlib.sha256(job_id.encode()).hexdigest()[:12], 16) % count


def drop_to(uid: int) -> list[str]:
    """setpriv (util-linux) switches user for good: after setuid from root the capabilities are
    gone, and bwrap's no_new_privs keeps set-user-ID programs from bringing any back."""
    return ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--"]


def bwrap_available() -> tuple[bool, str]:
    """Whether bubblewrap is installed and can create namespaces here (some containers forbid it)."""
    path = shutil.which("bwrap")
    if path is None:
        return False, "bwrap is not installed"
    probe = [path, "--unshare-all", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
             "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "/usr/bin/true"]  # fmt: skip
    result = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        return False, f"bwrap cannot create namespaces here: {result.stderr.strip()[:200]}"
    return True, f"bwrap at {path}"


class BwrapBackend(LocalBackend):
    name = "bwrap"
    isolates = True

    @classmethod
    def available(cls, options: BackendOptions) -> tuple[bool, str]:
        return bwrap_available()

    @classmethod
    def create(cls, options: BackendOptions) -> BwrapBackend:
        return cls()

    def command(self, job: Job, job_dir: Path, out_dir: Path) -> list[str]:
        if os.geteuid() == 0:
            # A user namespace created by root maps the sandbox user to host root (no process
            # limit, root-only files readable). So as root: no user namespace, and the job drops
            # to a host uid of its own before Python starts (`drop_to` below). The watchdog keeps
            # CAP_KILL, to end the job's processes (another uid) and reap them before it reports.
            identity = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                        "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_KILL",
                        "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # fmt: skip
        else:
            identity = [
                "--unshare-all",
                "--cap-drop",
                "ALL",
                "--uid",
                str(SANDBOX_UID),
                "--gid",
                str(SANDBOX_UID),
            ]
        command = [
            "bwrap", *identity, "--die-with-parent", "--new-session",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(job.limits.scratch_mb << 20), "--tmpfs", "/tmp",
        ]  # fmt: skip
        for path in SYSTEM_PATHS:
            command += ["--ro-bind-try", path, path]
        binds = [Path(path) for path in [*host_runtime_paths(), *job.read_only_paths]]
        # bwrap copies the host's mode onto the folders it creates above a bind, and /root is
        # owner-only: make them traversable, or the job could not reach a runtime installed there.
        parents = {parent for path in binds for parent in path.parents if parent != Path("/")}
        for folder in sorted(p for p in parents if not any(p.is_relative_to(s) for s in SYSTEM_PATHS)):
            command += ["--perms", "0755", "--dir", str(folder)]
        for path in binds:
            command += ["--ro-bind", str(path), str(path)]
        system = [Path(path) for path in SYSTEM_PATHS]
        for empty, hidden in hidden_mounts(job, job_dir, [*system, *binds]):
            command += ["--ro-bind", str(empty), str(hidden)]
        if job.gpu is not None:
            for node in device_nodes(job.gpu):
                command += ["--dev-bind", node, node]
        command += ["--ro-bind", str(job_dir), "/job", "--bind", str(out_dir), "/out", "--chdir", "/tmp"]
        command += ["--ro-bind", str(lease_path(job_dir)), "/lease"]
        # bwrap builds / and /dev as tmpfs with no size limit: once every mount point exists, make
        # them read-only (as Docker's read-only root), so that /tmp stays the only scratch space.
        command += ["--remount-ro", "/dev", "--remount-ro", "/"]
        command.append("--clearenv")
        for key, value in job_environment(job, home="/tmp").items():
            command += ["--setenv", key, value]
        job_command = python_command("/job", "/out")
        if os.geteuid() == 0:
            job_command = drop_to(job_uid(job.job_id)) + job_command
        # The job runs under the watchdog, which measures its peak memory (bwrap's own PID 1 would
        # hide it from this process's wait4); discover enforces the time limit itself. Run by root,
        # the watchdog keeps the sandbox's root, out of the job's reach.
        return command + watched(sys.executable, job.limits.timeout_s, "/lease", job_command)

    def execute(self, job: Job, job_dir: Path, out_dir: Path) -> JobOutcome:
        try:
            command = self.command(job, job_dir, out_dir)
        except GpuNotFound as exc:
            return JobOutcome(job_id=job.job_id, status="failed", reason=str(exc))
        cgroup = JobCgroup.create(job.study_id, job.job_id, job.limits.memory_mb)
        try:
            procs = cgroup.procs if cgroup else None
            exited = run_local(command, job, env={}, cgroup_procs=procs)
            oom_kills = cgroup.oom_kills() if cgroup else 0
        finally:
            if cgroup:
                cgroup.remove()
        # The watchdog's account of the job, not this process's of bwrap (`command`).
        log, accounting = read_accounting(exited.log)
        peak_memory_mb, cpu_time_s = accounting or (None, None)
        measured = replace(exited, log=log, peak_memory_mb=peak_memory_mb, cpu_time_s=cpu_time_s)
        result = outcome(job, measured, out_dir)
        if oom_kills and result.status == "failed":
            result.reason = (
                f"killed: the job's processes together exceeded the {job.limits.memory_mb} MB memory limit"
            )
        elif peak_memory_mb is None and exited.exit_code == 128 + signal.SIGKILL:
            # Run by a normal user, the watchdog is the job's user too: the job could kill it.
            result.reason = f"the process that watches the job was killed ({result.reason})"
        return result

    def reap(self, study_id: str | None = None, job_id: str | None = None) -> int:
        """Remove the memory cgroups a killed run of this study left (its jobs died with it)."""
        return remove_leftovers(study_id) if study_id else 0
