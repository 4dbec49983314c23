"""What every command shares: the two consoles and the one-line failure."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

stdout = Console(highlight=False, soft_wrap=True)  # long paths stay on one line
stderr = Console(stderr=True, highlight=False)


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    # Escaped: messages quote user input and paths, which may contain [brackets].
    stderr.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)
