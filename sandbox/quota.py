"""A hard size limit on a job's output folder, the one host folder a job can write.

RLIMIT_FSIZE bounds each file; only a filesystem bounds their sum. Run by root (as CI and most
Docker hosts run discover), each job's out/ is a tmpfs of `output_mb` while the job runs, so a
job that writes many files fills its own quota, not the host's disk. When the job has ended its
files are copied back onto the disk (regular files and links only; FIFOs, sockets and devices are
dropped; set-user-ID bits are never kept) and the tmpfs is unmounted, so the rest of discover sees
an ordinary folder. Without root, out/ stays an ordinary folder and only each file is bounded.

Each mount names the process that made it (`discover-out:PID:START`, in /proc/mounts), so the
mounts of a process that died before releasing them (killed, or a Ray worker that Ray killed) can
be found and released by any later one (`release_orphans`).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

PERMISSIONS = 0o777  # the job's own user, whichever uid it runs as, must be able to write
SOURCE = "discover-out"  # the mount's source name in /proc/mounts, followed by its owner


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), which tells it from a later process
    given the same pid; None when there is no such process."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rpartition(")")[2].split()[19]  # field 22, counted after the command name


def owner_tag() -> str:
    """This process, as the source name of the mounts it makes."""
    return f"{SOURCE}:{os.getpid()}:{process_start(os.getpid())}"


def owner_alive(source: str) -> bool:
    """Whether the process that made the mount with this source name is still running."""
    _, _, owner = source.partition(":")
    pid, _, started = owner.partition(":")
    return pid.isdigit() and process_start(int(pid)) == started


def mounted() -> list[tuple[str, Path]]:
    """(source, mount point) of every job output tmpfs on this host."""
    entries = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[0] == SOURCE or fields[0].startswith(SOURCE + ":"):
            entries.append((fields[0], Path(fields[1].replace("\\040", " "))))
    return entries


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


def bound(out_dir: Path, size_mb: int) -> bool:
    """Mount a tmpfs of `size_mb` on the (empty) out_dir; False when this process cannot."""
    if not can_mount():
        return False
    options = f"size={size_mb}m,mode={PERMISSIONS:o},nosuid,nodev"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, owner_tag(), str(out_dir)], capture_output=True
    )
    return result.returncode == 0


def release(out_dir: Path) -> None:
    """Copy what the job left onto the disk, then unmount the tmpfs (see the module docstring)."""
    settled = out_dir.with_name(out_dir.name + ".settled")
    try:
        settled.mkdir(mode=0o755)
        _copy_tree(out_dir, settled)
    except OSError:  # a leftover whose folders are gone or half-settled: unmount it all the same
        subprocess.run(["umount", "--lazy", str(out_dir)], capture_output=True)
        return
    subprocess.run(["umount", "--lazy", str(out_dir)], check=True, capture_output=True)
    out_dir.rmdir()
    settled.replace(out_dir)
    out_dir.chmod(PERMISSIONS)


def _copy_tree(source: Path, target: Path) -> None:
    with os.scandir(source) as entries:
        for entry in entries:
            destination = target / entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(entry.path), destination)  # kept as a link, never followed
            elif stat.S_ISDIR(mode):
                destination.mkdir(mode=0o755)
                _copy_tree(Path(entry.path), destination)
            elif stat.S_ISREG(mode):
                # O_NOFOLLOW: the entry was a regular file a moment ago; it must still be one.
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as reader, destination.open("wb") as writer:
                    shutil.copyfileobj(reader, writer)
                destination.chmod(stat.S_IMODE(mode) & 0o777)  # no set-user-ID, set-group-ID, sticky


def release_leftovers(jobs_dir: Path) -> int:
    """Release the output tmpfs of jobs a crashed run left mounted under `jobs_dir` (whose study
    this process now runs alone, under its lock)."""
    if not can_mount():
        return 0
    root = jobs_dir.resolve()
    return release_all([point for _, point in mounted() if point.is_relative_to(root)])


def release_orphans() -> int:
    """Release every job output tmpfs on this host whose process is gone."""
    if not can_mount():
        return 0
    return release_all([point for source, point in mounted() if not owner_alive(source)])


def release_all(mount_points: list[Path]) -> int:
    for mount_point in mount_points:
        release(mount_point)
    return len(mount_points)
