"""One writer per study: `discover run` holds an exclusive lock on the study folder for its life.

The lock is a `flock` on the folder itself, so the kernel drops it the moment the process dies,
however it dies (a crash never needs manual unlocking), and taking it writes nothing. A second
`run` (or `--resume`) is refused with a line naming the holder, found in /proc/locks. Readers
(`status`, `report`, `show`) never take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from discover.agents.record import StudyError


def lock_holder(folder: Path) -> str:
    """The process id holding a flock on `folder`, from the kernel's table of locks; "?" when
    it cannot be told (another pid namespace, or no /proc)."""
    inode = os.stat(folder).st_ino
    try:
        table = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "?"
    for line in table:
        fields = line.split()
        if "FLOCK" in fields and len(fields) > 5 and fields[5].endswith(f":{inode}"):
            return fields[4]
    return "?"


class StudyLock:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> StudyLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)  # not inherited by jobs (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = lock_holder(self.folder)
            raise StudyError(
                f"{self.folder} is being run by process {holder}; let it finish, or stop it "
                f"(Ctrl-C, or kill {holder}) and continue with --resume"
            ) from None
        self.fd = fd
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
