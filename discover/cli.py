"""The `discover` command line: the commands, assembled from one module per concern. Each command
is a thin layer over a library call and imports what it needs when it runs, so the command line
starts fast."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from discover.candidate_cli import check, sandbox_app, train
from discover.console import stderr
from discover.kb_cli import export_command, import_command, kb_app
from discover.review_cli import report_command, reproduce_command
from discover.study_cli import (
    baseline_app,
    doctor_command,
    init_command,
    replicate_command,
    run_command,
    show_command,
    status_command,
)

app = typer.Typer(
    help="Autonomous neural-architecture discovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(init_command)
app.command("run")(run_command)
app.command("status")(status_command)
app.command("show")(show_command)
app.command("report")(report_command)
app.command("reproduce")(reproduce_command)
app.command("replicate")(replicate_command)
app.command("doctor")(doctor_command)
app.add_typer(baseline_app, name="baseline")
app.command("check")(check)
app.command("train")(train)
app.add_typer(kb_app, name="kb")
app.command("export")(export_command)
app.command("import")(import_command)
app.add_typer(sandbox_app, name="sandbox")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # discover's own bug: one line here, the whole story in a file
        from discover.internal_errors import internal_error

        stderr.print(f"error: {escape(internal_error(exc, sys.argv[1:]))}", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
