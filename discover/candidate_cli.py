"""`discover check`, `discover train` and `discover sandbox`: one candidate file, outside a study.

Heavy modules (torch, the sandbox backends) are imported inside the commands, so that `discover
--help` and the other commands start without them."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from discover.console import UsageError, fail, stderr, stdout
from discover.experiments.tasks import DEFAULT_TASK, TASKS
from discover.sandbox.backends import BACKENDS

if TYPE_CHECKING:
    from discover.experiments.runspec import RunSpec
    from discover.sandbox.base import Limits
    from discover.sandbox.runner import Sandbox
    from discover.vetting.candidate import VettedCandidate

CandidateArg = Annotated[str, typer.Argument(help="A candidate .py file, or a built-in baseline's name.")]
TaskOpt = Annotated[
    str | None, typer.Option("--task", "-t", help=f"Task name: {TASKS.help()} (default {DEFAULT_TASK}).")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a task setting, e.g. --set steps=200 (repeatable)."),
]
PresetOpt = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Start from the task's named settings (lm: cpu-tiny, asi-arch-explore, asi-arch-verify).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
SandboxOpt = Annotated[
    str,
    typer.Option("--sandbox", help=f"{BACKENDS.help(('auto',))} (auto: the strongest available)."),
]
UntrustedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-untrusted-process", help="Let the process backend run a file that is not built in."
    ),
]
ImageOpt = Annotated[
    str | None,
    typer.Option("--image", help="Docker image (default: the offline one); any other must bundle discover."),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Wall-clock limit per job, seconds.")]
MemoryOpt = Annotated[int, typer.Option("--memory", help="Memory limit per job, MB.")]


def resolve_candidate(candidate: str) -> VettedCandidate:
    """The candidate's file (a path, or a built-in baseline's name), vetted once for all its jobs.
    Whether it is trusted is the trust policy's call on its code (`discover.vetting.trust`)."""
    from discover.experiments.baselines import builtin_baselines
    from discover.vetting.candidate import vet

    path = Path(candidate)
    if path.is_file():
        return vet(path)
    if path.suffix == ".py" or "/" in candidate:
        raise UsageError(f"candidate file {candidate} does not exist")
    baselines = builtin_baselines()
    if candidate in baselines:
        return vet(baselines[candidate])
    raise UsageError(f"no file or built-in baseline named '{candidate}'; built-ins: {', '.join(baselines)}")


def prepare(
    candidate: str,
    task: str | None,
    settings: list[str] | None,
    preset: str | None,
    seed: int,
    sandbox: str,
    image: str | None,
    allow_untrusted_process: bool,
    timeout: float,
    memory: int,
) -> tuple[VettedCandidate, RunSpec, Sandbox, str]:
    """What `check` and `train` start from, every user error one line: the candidate vetted, the
    run resolved (a missing corpus fails here, before anything is written), the sandbox and why."""
    from discover.experiments.runspec import RunSpec
    from discover.sandbox.base import Limits

    with user_errors():
        vetted = resolve_candidate(candidate)
        given = parse_settings(settings)
        spec = RunSpec.resolve(task or DEFAULT_TASK, given | ({"preset": preset} if preset else {}), seed)
        spec.task.prepare(spec.config)
        limits = Limits(timeout_s=timeout, memory_mb=memory)
        runner, why = open_sandbox(sandbox, image, allow_untrusted_process, limits)
    return vetted, spec, runner, why


def parse_settings(settings: list[str] | None) -> dict[str, str]:
    overrides = {}
    for item in settings or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes key=value, got '{item}'")
        overrides[key.strip()] = value.strip()
    return overrides


def check(
    candidate: CandidateArg,
    task: TaskOpt = None,
    settings: SetOpt = None,
    preset: PresetOpt = None,
    json: JsonOpt = False,
    sandbox: SandboxOpt = "auto",
    allow_untrusted_process: UntrustedOpt = False,
    image: ImageOpt = None,
    timeout: TimeoutOpt = 600.0,
    memory: MemoryOpt = 8192,
):
    """Probe a candidate in the sandbox: contract, causality, batch independence, complexity."""
    vetted, spec, runner, why = prepare(
        candidate, task, settings, preset, 0, sandbox, image, allow_untrusted_process, timeout, memory
    )
    (stderr if json else stdout).print(f"[dim]sandbox: {why}[/dim]")
    with job_errors(), tempfile.TemporaryDirectory(prefix="discover-jobs-") as workdir:
        runner.workdir = Path(workdir)
        verdict = runner.check(vetted, spec)
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
            table.add_row(probe.name, mark, escape(probe.reason))
        stdout.print(table)
    if not verdict.passed:
        first = verdict.failures()[0]
        stderr.print(f"[red]check failed:[/red] {first.name}: {escape(first.reason)}", soft_wrap=True)
        raise typer.Exit(1)


def train(
    candidate: CandidateArg,
    task: TaskOpt = None,
    settings: SetOpt = None,
    preset: PresetOpt = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and training data.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: runs/<time>-<candidate>-<task>).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N (default: cuda:0 when present).")] = "auto",
    json: JsonOpt = False,
    sandbox: SandboxOpt = "auto",
    allow_untrusted_process: UntrustedOpt = False,
    image: ImageOpt = None,
    timeout: TimeoutOpt = 3600.0,
    memory: MemoryOpt = 8192,
):
    """Probe, then train a candidate in the sandbox; write metrics.jsonl and result.json."""
    from discover.experiments.harness import StepLog

    progress = stderr if json else stdout
    vetted, spec, runner, why = prepare(
        candidate, task, settings, preset, seed, sandbox, image, allow_untrusted_process, timeout, memory
    )
    the_device = pick_device_name(device)
    progress.print(f"[dim]sandbox: {why}[/dim]")
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{vetted.name}-{spec.task.name}-seed{seed}"
    out = out or Path("runs") / name

    def log(step: StepLog) -> None:
        progress.print(
            f"step {step.step:>6}/{spec.steps}  loss {step.train_loss:7.4f}  lr {step.lr:.2e}  "
            f"{step.tokens_per_s:>9,.0f} tok/s  {step.elapsed_s:6.1f}s"
        )

    with job_errors(), tempfile.TemporaryDirectory(prefix="discover-jobs-") as workdir:
        runner.workdir = Path(workdir)
        verdict = runner.check(vetted, spec.with_seed(0))
        if not verdict.passed:
            first = verdict.failures()[0]
            fail(f"{vetted.path.name} failed the {first.name} probe: {first.reason}", code=1)
        progress.print(
            f"training {vetted.name} on {spec.task.name} ({spec.steps} steps, seed {seed}, "
            f"{the_device}) -> {out}"
        )
        result = runner.train(vetted, spec, the_device, run_dir=out, on_log=log)
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


sandbox_app = typer.Typer(help="Sandbox images and housekeeping.", no_args_is_help=True)


@sandbox_app.command("build-image")
def build_image(
    tag: Annotated[str | None, typer.Option(help="Image tag (default: the offline one).")] = None,
):
    """Build the offline sandbox image locally (pulls nothing; needs a Docker engine)."""
    from discover.sandbox.docker import OFFLINE_IMAGE, build_offline_image, docker_available

    tag = tag or OFFLINE_IMAGE
    ok, why = docker_available(tag)
    if not ok and "no Docker engine" in why:
        fail(why)
    stdout.print(f"built {build_offline_image(tag)}")


@sandbox_app.command("reap")
def reap(study: Annotated[str | None, typer.Option(help="Only this study's containers.")] = None):
    """Remove what stopped studies left: exited job containers and job output mounts whose process
    is gone. Running jobs are left alone (a job whose study is gone ends within a minute)."""
    from discover.sandbox import quota
    from discover.sandbox.docker import DockerBackend, docker_available

    ok, why = docker_available()
    containers = DockerBackend().reap_exited(study) if ok or "no Docker engine" not in why else 0
    mounts = quota.release_orphans()
    stdout.print(f"removed {containers} container(s) and {mounts} job output mount(s)")


def open_sandbox(name: str, image: str | None, allow_untrusted: bool, limits: Limits) -> tuple[Sandbox, str]:
    from discover.agents.compose import adhoc_sandbox, choose_sandbox

    choice = choose_sandbox(name, untrusted=False, image=image, allow_untrusted_process=allow_untrusted)
    return adhoc_sandbox(choice.backend, limits), choice.why


def pick_device_name(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line and exit status 2."""
    from discover.experiments.contract import CandidateError
    from discover.experiments.tasks import TaskConfigError
    from discover.sandbox.select import SandboxUnavailable

    try:
        yield
    except (
        UsageError,
        TaskConfigError,
        CandidateError,
        SandboxUnavailable,
        FileNotFoundError,
        ValueError,
    ) as exc:
        fail(str(exc))


@contextmanager
def job_errors() -> Iterator[None]:
    """A sandbox job that failed (the candidate crashed, timed out, was refused): one line, status 1."""
    from discover.sandbox.runner import JobFailed

    try:
        yield
    except JobFailed as exc:
        fail(f"{exc.outcome.status}: {exc.outcome.reason}", code=1)
