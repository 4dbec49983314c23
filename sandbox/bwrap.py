"""The `bwrap` backend: bubblewrap namespaces for hosts without a Docker engine.

New user, network, pid, ipc and uts namespaces (no network at all), every capability dropped,
a read-only root with the host's runtime bound read-only, a size-limited tmpfs as scratch, the job
folder read-only and the output folder writable; the sandbox dies with its parent, and rlimits
bound memory and files.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

from discover.sandbox.base import Job, JobOutcome
from discover.sandbox.local import job_environment, python_command, run_local
from discover.sandbox.process import outcome
from discover.sandbox.runtime import host_runtime_paths

SYSTEM_PATHS = ("/usr", "/etc/ld.so.cache", "/etc/alternatives", "/etc/ssl", "/etc/localtime")
SANDBOX_UID = 65534  # nobody


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


class BwrapBackend:
    name = "bwrap"

    def command(self, job: Job, job_dir: Path, out_dir: Path) -> list[str]:
        command = [
            "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(job.limits.scratch_mb << 20), "--tmpfs", "/tmp",
        ]  # fmt: skip
        for path in SYSTEM_PATHS:
            command += ["--ro-bind-try", path, path]
        for path in [*host_runtime_paths(), *job.read_only_paths]:
            command += ["--ro-bind", str(path), str(path)]
        if job.device.startswith("cuda"):
            for device in sorted(glob.glob("/dev/nvidia*")):
                command += ["--dev-bind", device, device]
        command += ["--ro-bind", str(job_dir), "/job", "--bind", str(out_dir), "/out", "--chdir", "/tmp"]
        # bwrap builds / and /dev as tmpfs with no size limit: once every mount point exists, make
        # them read-only (as Docker's read-only root), so that /tmp stays the only scratch space.
        command += ["--remount-ro", "/dev", "--remount-ro", "/"]
        command.append("--clearenv")
        for key, value in job_environment(job, home="/tmp").items():
            command += ["--setenv", key, value]
        return command + python_command("/job", "/out")

    def execute(self, job: Job, job_dir: Path, out_dir: Path) -> JobOutcome:
        exit_code, log, seconds = run_local(self.command(job, job_dir, out_dir), job, env={})
        return outcome(job, exit_code, log, seconds, out_dir)
