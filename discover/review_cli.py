"""Reviewing a study: `discover report` writes its architecture reports; `discover reproduce`
trains one recorded result again and compares."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from discover.console import fail, stdout
from discover.sandbox.backends import BACKENDS
from discover.study_cli import FolderOpt


def report_command(
    folder: FolderOpt = Path("."),
    open_: Annotated[bool, typer.Option("--open", help="Open the report in a web browser.")] = False,
):
    """Write the study's report: an HTML site (leaderboard, discovery curve, Pareto front, lineage,
    costs, a page per design with curves, diff and code), Markdown per design, and CSV of every run,
    in FOLDER/report. Safe to run while `discover run` is writing."""
    from discover.agents.record import StudyError
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


def reproduce_command(
    reference: Annotated[
        str, typer.Argument(help="A run id (or its first 6+ characters), or a design name.")
    ],
    folder: FolderOpt = Path("."),
    sandbox: Annotated[
        str | None, typer.Option(help=f"{BACKENDS.help(('auto',))} (default: the one it ran in).")
    ] = None,
    tolerance: Annotated[float, typer.Option(help="Largest metric difference called a match.")] = 1e-4,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Train one recorded result again (its stored code, checked against the code hash; its task
    settings, seed and held-out data) and compare metric, loss and parameter count. Exit status 1
    when the metric differs by more than the tolerance. Not charged to the study's budget."""
    from rich.markup import escape

    from discover.agents.record import StudyError
    from discover.agents.reproduce import reproduce
    from discover.sandbox.select import SandboxUnavailable

    try:
        outcome = reproduce(folder, reference, sandbox, tolerance)
    except (StudyError, SandboxUnavailable) as exc:
        fail(str(exc))
    if json:
        stdout.print_json(outcome.model_dump_json())
    else:
        stdout.print(
            f"{escape(outcome.design)}, {outcome.fidelity} run {outcome.run_id[:12]} (seed {outcome.seed}): "
            f"{outcome.metric} recorded {outcome.recorded:.6f}, reproduced {outcome.reproduced:.6f} "
            f"({outcome.difference:+.2e}): [bold]{outcome.verdict}[/bold]"
        )
        stdout.print(
            f"final training loss {outcome.recorded_loss:.6f} then, {outcome.reproduced_loss:.6f} now; "
            f"parameter count {'matches' if outcome.params_match else 'DIFFERS'}; "
            f"{outcome.device_seconds:.1f} device-seconds, not charged to the budget"
        )
        for warning in outcome.warnings:
            stdout.print(f"[yellow]note:[/yellow] {escape(warning)}")
    if outcome.verdict == "differs":
        raise typer.Exit(1)
