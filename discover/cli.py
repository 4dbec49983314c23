"""The `discover` command line. Each command is a thin layer over a library call."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from discover.experiments.baselines import builtin_baselines
from discover.experiments.contract import CandidateError
from discover.experiments.tasks import DEFAULT_TASK, TaskConfigError, get_task

app = typer.Typer(
    help="Autonomous neural-architecture discovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

CandidateArg = Annotated[str, typer.Argument(help="A candidate .py file, or a built-in baseline's name.")]
TaskOpt = Annotated[str, typer.Option("--task", "-t", help="Task name: mqar or lm.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a task setting, e.g. --set steps=200 (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    stderr.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


def resolve_candidate(candidate: str) -> Path:
    path = Path(candidate)
    if path.is_file():
        return path
    if path.suffix == ".py" or "/" in candidate:
        raise UsageError(f"candidate file {candidate} does not exist")
    baselines = builtin_baselines()
    if candidate in baselines:
        return baselines[candidate]
    raise UsageError(f"no file or built-in baseline named '{candidate}'; built-ins: {', '.join(baselines)}")


def parse_settings(settings: list[str] | None) -> dict[str, str]:
    overrides = {}
    for item in settings or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes key=value, got '{item}'")
        overrides[key.strip()] = value.strip()
    return overrides


@app.command()
def check(
    candidate: CandidateArg, task: TaskOpt = DEFAULT_TASK, settings: SetOpt = None, json: JsonOpt = False
):
    """Probe a candidate before training: contract, causality, batch independence, complexity."""
    from discover.experiments.probes import check as run_probes

    with user_errors():
        path = resolve_candidate(candidate)
        the_task = get_task(task)
        cfg = the_task.config(parse_settings(settings))
        verdict = run_probes(path, the_task, cfg)
    if json:
        stdout.print_json(verdict.model_dump_json())
    else:
        table = Table(title=f"{verdict.candidate} on {verdict.task}", title_justify="left")
        for column in ("probe", "result", "reason"):
            table.add_column(column, overflow="fold")
        for probe in verdict.probes:
            mark = (
                "[green]pass[/green]"
                if probe.passed
                else "[red]FAIL[/red]"
                if probe.required
                else "[yellow]fail[/yellow]"
            )
            table.add_row(probe.name, mark, probe.reason)
        stdout.print(table)
    if not verdict.passed:
        first = verdict.failures()[0]
        stderr.print(f"[red]check failed:[/red] {first.name}: {first.reason}", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def train(
    candidate: CandidateArg,
    task: TaskOpt = DEFAULT_TASK,
    settings: SetOpt = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and training data.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: runs/<time>-<candidate>-<task>).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    json: JsonOpt = False,
):
    """Probe, then train a candidate with the trusted harness; write metrics.jsonl and result.json."""
    from discover.experiments.harness import StepLog, pick_device
    from discover.experiments.harness import train as run_training
    from discover.experiments.probes import check as run_probes

    progress = stderr if json else stdout
    with user_errors():
        path = resolve_candidate(candidate)
        the_task = get_task(task)
        cfg = the_task.config(parse_settings(settings))
        the_device = pick_device(device)
        the_task.data_version(cfg)  # a missing corpus fails here, before anything is written
    verdict = run_probes(path, the_task, cfg)
    if not verdict.passed:
        first = verdict.failures()[0]
        fail(f"{path.name} failed the {first.name} probe: {first.reason}", code=1)

    out = out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.stem}-{task}-seed{seed}"

    def log(step: StepLog) -> None:
        progress.print(
            f"step {step.step:>6}/{cfg.steps}  loss {step.train_loss:7.4f}  lr {step.lr:.2e}  "
            f"{step.tokens_per_s:>9,.0f} tok/s  {step.elapsed_s:6.1f}s"
        )

    progress.print(f"training {path.stem} on {task} ({cfg.steps} steps, seed {seed}, {the_device}) -> {out}")
    result = run_training(path, the_task, cfg, seed=seed, device=the_device, out_dir=out, on_log=log)
    if json:
        stdout.print_json(result.model_dump_json())
        return
    table = Table(title=f"{result.candidate} on {result.task}", title_justify="left", show_header=False)
    rows = {
        f"{result.metric} (held out)": f"{result.value:.4f}",
        "status": result.status,
        "parameters": f"{result.params:,}",
        "forward FLOPs/token": f"{result.flops_per_token:,.0f}",
        "tokens/s": f"{result.tokens_per_s:,.0f}",
        "peak memory": f"{result.peak_memory_mb:,.0f} MB",
        "wall time": f"{result.wall_time_s:.1f} s",
        "device": result.device,
        "result": str(out / "result.json"),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    stdout.print(table)


class user_errors:
    """Turn the errors a user can cause into one line and exit status 2."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, UsageError | TaskConfigError | CandidateError | FileNotFoundError | ValueError):
            fail(str(exc))
        return False


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
