"""discover's own errors, in any command: one line for the user, the traceback in a file.

The file is the study folder's errors.log when the command names a study folder (`-C`/`--dir`,
else the current folder when it holds a study), otherwise errors.log in discover's state folder
(`$XDG_STATE_HOME/discover`, by default ~/.local/state/discover).
"""

from __future__ import annotations

import os
import traceback
from datetime import UTC, datetime
from pathlib import Path

ERROR_LOG = "errors.log"
STUDY_MARKERS = ("discover.toml", "study.json")  # a folder holding either is a study folder


def state_folder() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "discover"


def study_folder(arguments: list[str]) -> Path | None:
    """The study folder a command line names with -C/--dir, or the current folder if it is one."""
    for index, argument in enumerate(arguments):
        if argument in ("-C", "--dir") and index + 1 < len(arguments):
            return Path(arguments[index + 1])
        if argument.startswith("--dir="):
            return Path(argument.removeprefix("--dir="))
    here = Path.cwd()
    return here if any((here / marker).exists() for marker in STUDY_MARKERS) else None


def internal_error(exc: BaseException, arguments: list[str]) -> str:
    """Append the traceback of an unexpected error to an error log; a line naming the error and the
    log."""
    folder = study_folder(arguments)
    log = (folder if folder is not None and folder.is_dir() else state_folder()).resolve() / ERROR_LOG
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as stream:
            stream.write(f"--- {datetime.now(UTC).isoformat()} discover {' '.join(arguments)}\n")
            stream.write("".join(traceback.format_exception(exc)))
    except OSError:
        return f"internal error: {type(exc).__name__}: {exc} (the traceback could not be written)"
    return f"internal error: {type(exc).__name__}: {str(exc)[:200]} (traceback in {log})"
