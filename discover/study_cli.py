"""`discover init`, `discover run` and `discover baseline`: studies from the command line."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from discover.agents.proposers import PROPOSERS
from discover.console import UsageError, fail, stdout
from discover.experiments.tasks import SUITES, TASKS
from discover.sandbox.backends import BACKENDS

TASK_HELP = f"{TASKS.help(tuple(SUITES))} (a task, or a suite of them), or a suite of discover.toml"

if TYPE_CHECKING:
    from discover.agents.config import StudyConfig
    from discover.sandbox.select import Choice

FolderOpt = Annotated[Path, typer.Option("--dir", "-C", help="The study folder (default: here).")]


def init_command(folder: Annotated[Path, typer.Argument(help="Folder of the new study.")] = Path(".")):
    """Write a fully commented discover.toml into FOLDER: the study's configuration."""
    from discover.agents.record import StudyError
    from discover.agents.study import init_study

    try:
        path = init_study(folder)
    except StudyError as exc:
        fail(str(exc))
    stdout.print(f"wrote {path}; edit it, then run `discover run` in {folder}")


def run_command(
    folder: FolderOpt = Path("."),
    budget: Annotated[
        str | None, typer.Option(help="Device-time to spend: 200gpuh, 90gpum, 2h, 30m.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Experiments in flight at once.")] = None,
    proposer: Annotated[str | None, typer.Option(help=f"{PROPOSERS.help(('auto',))}.")] = None,
    sandbox: Annotated[str | None, typer.Option(help=f"{BACKENDS.help(('auto',))}.")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help=f"{TASK_HELP}.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the stopped or crashed study in the folder.")
    ] = False,
    max_experiments: Annotated[
        int | None, typer.Option(help="Stop starting experiments after this many (default: budget only).")
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="local, or ray: run jobs on a Ray cluster's nodes.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="The Ray cluster (default: auto, the one this machine joined).")
    ] = None,
):
    """Research until the budget is spent: propose, probe, train, score, verify, record; then print
    the leaderboard. Ctrl-C finishes the running experiments; twice stops at once."""
    from discover.agents.config import ConfigError, load_config
    from discover.agents.context import fidelity_specs
    from discover.agents.record import StudyError
    from discover.agents.study import run_study, study_budget
    from discover.experiments.tasks import TaskConfigError
    from discover.progress import Progress
    from discover.sandbox.select import SandboxUnavailable

    try:
        config = load_config(folder).with_overrides(
            budget=budget, workers=workers, proposer=proposer, sandbox=sandbox, task=task,
            executor=executor, ray_address=ray_address,
        )  # fmt: skip
        config = study_budget(folder, config, budget, resume)
        fidelity_specs(config)  # a bad task or setting fails here, before anything is written
        config, choice, proposer_why = study_sandbox_choice(config, folder)
    except (ConfigError, TaskConfigError, SandboxUnavailable, UsageError, StudyError) as exc:
        fail(str(exc))
    where = f"on the Ray cluster at {config.ray_address or 'auto'}, " if config.executor == "ray" else ""
    stdout.print(
        f"[dim]study in {folder.resolve()}: task {config.task}, budget {config.budget}, "
        f"proposer {config.proposer} ({escape(proposer_why)}), {config.workers or 'auto'} worker(s); "
        f"{where}sandbox {choice.why}[/dim]"
    )
    try:
        with Progress(folder, stdout) as progress:
            outcome = run_study(folder, config, choice.backend, resume, max_experiments, say=progress.say)
    except StudyError as exc:
        fail(str(exc))
    stdout.print(leaderboard_table(outcome.leaderboard, "at the end of this run"))
    stdout.print(f"stopped because {escape(outcome.stopped_because)}", soft_wrap=True)
    endings = ", ".join(f"{count} {status}" for status, count in sorted(outcome.endings.items())) or "none"
    stdout.print(
        f"experiments this run: {endings}. Spent {outcome.spent_s / 60:.1f} of {outcome.budget_s / 60:.1f} "
        f"device-minutes. Full leaderboard: {folder / 'leaderboard.md'}"
    )
    write_report(folder)
    if outcome.signal == signal.SIGINT:  # drained, but the user interrupted it: say so to the shell
        raise typer.Exit(130)


def replicate_command(
    design: Annotated[str, typer.Argument(help="A verified design's name or id.")],
    folder: FolderOpt = Path("."),
    budget: Annotated[
        str | None, typer.Option(help="Change the study's budget first (its runs are charged to it).")
    ] = None,
    sandbox: Annotated[str | None, typer.Option(help=f"{BACKENDS.help(('auto',))}.")] = None,
):
    """Test a design's claim again: it and its baseline trained at full fidelity on as many fresh
    seeds, scored on a fresh held-out set; records whether the claim held. Charged to the study."""
    from discover.agents.config import ConfigError, load_config
    from discover.agents.record import StudyError
    from discover.agents.study import replicate_design, study_budget
    from discover.progress import Progress
    from discover.sandbox.select import SandboxUnavailable

    try:
        config = load_config(folder).with_overrides(budget=budget, sandbox=sandbox)
        config, choice, _ = study_sandbox_choice(study_budget(folder, config, budget, resume=True), folder)
    except (ConfigError, SandboxUnavailable, StudyError) as exc:
        fail(str(exc))
    try:
        with Progress(folder, stdout) as progress:
            row = replicate_design(folder, config, choice.backend, design, say=progress.say)
    except StudyError as exc:
        fail(str(exc))
    if row.status != "complete":
        stdout.print(f"replication of {escape(design)} inconclusive: {escape(row.reason or '')}")
    else:
        held = "held" if row.beats else "did not hold"
        stdout.print(
            f"replication of {escape(design)} against {escape(row.baseline)} on fresh seeds {row.seeds} "
            f"and a fresh held-out set: mean gain {row.difference:+.4f}, p = {row.p_value:.3g} "
            f"(alpha {row.alpha:g}): the claim {held}"
        )
    write_report(folder)


def write_report(folder: Path) -> None:
    """The report site, refreshed at the end of every run; a failure here loses nothing recorded."""
    from discover.report.site import build_report

    try:
        index = build_report(folder)
    except Exception as exc:  # the study is safe in knowledge.db; `discover report` can try again
        stdout.print(f"[yellow]no report written ({escape(type(exc).__name__)}: {escape(str(exc))})[/yellow]")
        return
    stdout.print(f"report: {index.resolve().as_uri()}")


def leaderboard_table(rows: list[dict], note: str, limit: int = 15) -> Table:
    from discover.agents.leaderboard import verification_text

    metric = rows[0]["metric"] if rows else "metric"
    table = Table(title=f"leaderboard by fitness; {metric} ({note})", title_justify="left")
    for column in (
        "#",
        "design",
        "origin",
        "fitness (1 seed)",
        "screen",
        "full (seeds)",
        "verification",
        "tokens/s",
    ):
        table.add_column(column, no_wrap=column in ("design", "screen"))
    for index, row in enumerate(rows[:limit], 1):
        full = f"{row['full_mean']:.4f} ({row['full_seeds']})" if "full_mean" in row else ""
        fitness = f"{row['fitness']:.3f}" if row["fitness"] is not None else ""
        screen = f"{row['screen_value']:.4f}"
        speed = f"{row['tokens_per_s']:,.0f}"
        claim = verification_text(row)
        table.add_row(str(index), escape(row["name"]), row["origin"], fitness, screen, full, claim, speed)
    return table


def status_command(
    folder: FolderOpt = Path("."),
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Where the study in the folder stands: budget, experiments, running jobs, LLM spend, leaderboard."""
    from discover.agents.checkpoints import describe_outcomes
    from discover.agents.record import StudyError
    from discover.agents.status import study_status

    try:
        status = study_status(folder)
    except StudyError as exc:
        fail(str(exc))
    if json:
        stdout.print_json(status.model_dump_json())
        return
    budget = f"{status.budget_s / 60:.1f}" if status.budget_s else "?"
    stdout.print(
        f"[bold]{status.name}[/bold] on {status.task}: spent {status.spent_s / 60:.1f} of {budget} "
        f"device-minutes ({status.reserved_s / 60:.1f} reserved by running jobs); "
        f"LLM ${status.llm_usd:.2f} over {status.llm_requests} requests"
    )
    designs = ", ".join(f"{count} {state}" for state, count in sorted(status.designs.items())) or "none yet"
    stdout.print(f"designs: {designs}")
    stdout.print(f"experiments: {describe_outcomes(status.outcomes)}")
    if status.running:
        stdout.print(f"running: {', '.join(status.running)}")
    stdout.print(leaderboard_table(status.leaderboard, f"{len(status.leaderboard)} screened"))
    if status.rank_correlation is not None:
        stdout.print(f"screening vs full-fidelity rank correlation: {status.rank_correlation:+.2f}")


def show_command(
    design: Annotated[str, typer.Argument(help="A design's name or id, as `discover status` lists them.")],
    folder: FolderOpt = Path("."),
    code: Annotated[bool, typer.Option("--code", help="Also print the candidate file.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """One design: hypothesis, motivation, parents, every run (fidelity, seed, metric, fitness, cost),
    findings."""
    from discover.agents.record import StudyError
    from discover.agents.status import design_detail

    try:
        detail = design_detail(folder, design)
    except StudyError as exc:
        fail(str(exc))
    if json:
        stdout.print_json(detail.model_dump_json())
        return
    # Names, motivations and findings may come from an LLM: printed as text, never as markup.
    stdout.print(f"[bold]{escape(detail.name)}[/bold] ({detail.origin}, id {detail.id})")
    stdout.print(f"parents: {escape(', '.join(detail.parents) or 'none')}")
    stdout.print(f"hypothesis: {escape(detail.hypothesis or 'not recorded')}")
    stdout.print(f"motivation: {escape(detail.motivation or 'not recorded')}")
    table = Table(title="runs", title_justify="left")
    for column in ("fidelity", "seed", "status", "metric", "fitness", "device-s", "reason"):
        table.add_column(column, overflow="fold")
    for run in detail.runs:
        table.add_row(
            run.fidelity, str(run.seed), run.status,
            f"{run.value:.4f}" if run.value is not None else "",
            f"{run.fitness:.3f}" if run.fitness is not None else "",
            f"{run.cost_device_seconds:.1f}" if run.cost_device_seconds is not None else "",
            escape(run.failure_reason or ""),
        )  # fmt: skip
    stdout.print(table)
    for finding in detail.findings:
        stdout.print(escape(f"[{finding['verdict']}] {finding['statement']}"))
    if code:
        stdout.print(escape(detail.code), markup=True)


def doctor_command(folder: FolderOpt = Path(".")):
    """Check, before spending anything, what the study in the folder needs: sandboxes, GPUs,
    disk, knowledge base, LLM endpoint and models. Exit status 1 when a check fails."""
    from discover.agents.config import ConfigError, load_config
    from discover.doctor import run_checks

    try:
        config = load_config(folder)
    except ConfigError as exc:
        fail(str(exc))
    checks = run_checks(config, folder)
    table = Table(title=f"discover doctor: {folder.resolve()}", title_justify="left")
    for column in ("check", "state", "detail"):
        table.add_column(column, overflow="fold")
    colour = {"ok": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        table.add_row(check.name, f"[{colour[check.state]}]{check.state}[/]", escape(check.detail))
    stdout.print(table)
    if any(check.state == "fail" for check in checks):
        raise typer.Exit(1)


def study_sandbox_choice(config: StudyConfig, folder: Path) -> tuple[StudyConfig, Choice, str]:
    """The study's proposer resolved (and why), and the sandbox its designs run in: one that
    isolates unless the proposer writes only trusted code. SandboxUnavailable when there is none."""
    from discover.agents.compose import choose_sandbox
    from discover.agents.proposer_choice import choose_proposer

    proposer, why = choose_proposer(config, folder)
    config = config.with_overrides(proposer=proposer)
    writes = f"what the {config.proposer} proposer writes"
    untrusted = None if PROPOSERS.get(config.proposer).trusted else writes
    return config, choose_sandbox(config.sandbox, untrusted), why


baseline_app = typer.Typer(
    help="Your own baselines: references and parents for a study.", no_args_is_help=True
)


@baseline_app.command("add")
def baseline_add(
    file: Annotated[Path, typer.Argument(help="A candidate file that follows the contract.")],
    name: Annotated[
        str, typer.Option(help="The baseline's name (list it under baselines in discover.toml).")
    ],
    folder: FolderOpt = Path("."),
    sandbox: Annotated[str, typer.Option(help=f"{BACKENDS.help(('auto',))} (one that isolates).")] = "auto",
):
    """Probe FILE in the sandbox and store it as a baseline of the study in the folder."""
    from discover.agents.compose import adhoc_sandbox, choose_sandbox
    from discover.agents.context import fidelity_specs
    from discover.agents.record import StudyError, open_knowledge_base
    from discover.experiments.tasks import TaskConfigError
    from discover.knowledge_base.store import StoreError
    from discover.sandbox.runner import JobFailed
    from discover.sandbox.select import SandboxUnavailable
    from discover.vetting.candidate import vet

    if not file.is_file():
        fail(f"{file} does not exist")
    if not name.replace("_", "").replace("-", "").isalnum():
        fail(f"baseline name {name!r} may hold only letters, digits, - and _")
    from discover.agents.config import ConfigError, load_config

    try:
        config = load_config(folder)
        choice = choose_sandbox(sandbox, untrusted="a baseline file")
        spec = fidelity_specs(config)["full"].parts[0]  # the probes test the mixer: the first task's
    except (ConfigError, SandboxUnavailable, TaskConfigError) as exc:
        fail(str(exc))
    with tempfile.TemporaryDirectory(prefix="discover-baseline-") as workdir:
        runner = adhoc_sandbox(choice.backend, config.limits, Path(workdir))
        try:
            verdict = runner.check(vet(file, trusted=False), spec)
        except JobFailed as exc:
            fail(f"{file.name}: the check job failed: {exc.outcome.reason}", code=1)
    if not verdict.passed:
        first = verdict.failures()[0]
        fail(f"{file.name} failed the {first.name} probe: {first.reason}", code=1)
    try:
        with open_knowledge_base(folder) as kb:
            kb.add_baseline(name, file.read_text(), str(file.resolve()))
    except (StudyError, StoreError) as exc:
        fail(str(exc))
    stdout.print(f"added baseline {name} ({file}); list it under baselines in {folder / 'discover.toml'}")


@baseline_app.command("list")
def baseline_list(folder: FolderOpt = Path(".")):
    """Baselines of the study in the folder (built-ins, and those added with `baseline add`)."""
    from sqlmodel import select

    from discover.agents.record import StudyError, open_knowledge_base
    from discover.experiments.baselines import builtin_baselines
    from discover.knowledge_base.schema import Baseline

    table = Table(title="baselines", title_justify="left")
    for column in ("name", "source", "added"):
        table.add_column(column, overflow="fold")
    stored = {}
    if (folder / "knowledge.db").exists():
        try:
            with open_knowledge_base(folder) as kb, kb.reading() as session:
                stored = {row.name: row for row in session.exec(select(Baseline))}
        except StudyError as exc:
            fail(str(exc))
    for name in builtin_baselines():
        table.add_row(name, "built in", "")
    for name, row in sorted(stored.items()):
        if row.source != "builtin":
            table.add_row(name, row.source, row.added_at.strftime("%Y-%m-%d %H:%M"))
    stdout.print(table)
