"""`discover report`: write the study's architecture reports and say where they are."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from discover.console import fail, stdout
from discover.study_cli import FolderOpt


def report_command(
    folder: FolderOpt = Path("."),
    open_: Annotated[bool, typer.Option("--open", help="Open the report in a web browser.")] = False,
):
    """Write the study's report: an HTML site (leaderboard, discovery curve, Pareto front, lineage,
    costs, a page per design with curves, diff and code), Markdown per design, and CSV of every run,
    in FOLDER/report. Safe to run while `discover run` is writing."""
    from discover.agents.study import StudyError
    from discover.report.site import build_report

    try:
        index = build_report(folder)
    except StudyError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the report in {folder}: {exc.strerror or exc}")
    stdout.print(f"report: {index.resolve().as_uri()}")
    if open_ and not webbrowser.open(index.resolve().as_uri()):
        stdout.print("[dim]no web browser found here; open the file above yourself[/dim]")
