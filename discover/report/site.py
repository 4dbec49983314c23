"""`discover report`: a static HTML site (and Markdown per design, CSV and TensorBoard event files
of every run) in the study folder, viewable from disk with no server.

Everything an LLM wrote (names, motivations, code, findings) is untrusted: the HTML templates are
autoescaped, design pages are named by id rather than by name, the Markdown escapes markup, and
CSV cells that a spreadsheet would evaluate as formulas are quoted. The site is written to a
staging folder and swapped in whole, so a failed build leaves the previous report as it was.
"""

from __future__ import annotations

import csv
import html
import re
import shutil
import tempfile
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from discover.report import plots
from discover.report.data import StudyView, load_study
from discover.report.tensorboard import write_tensorboard

REPORT_FOLDER = "report"


def environment(autoescape: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("discover.report", "templates"), autoescape=autoescape,
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )  # fmt: skip
    env.filters["num"] = number
    env.filters["minutes"] = lambda seconds: f"{(seconds or 0.0) / 60:.2f}"
    env.filters["md"] = markdown_text
    return env


def number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{int(value):,}"
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~>])")


def markdown_text(text: str) -> str:
    """LLM text as inert Markdown: no HTML a viewer would render, and every character Markdown
    reads as markup (emphasis, code, links, headings, lists, tables) escaped, so `**x**` and
    `[x](javascript:...)` show as the characters they are."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def build_report(folder: Path) -> Path:
    """Write the report of the study in `folder` to `folder/report`; returns its index page."""
    view = load_study(folder)
    target = folder / REPORT_FOLDER
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=folder))
    try:
        write_site(view, staging)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=".report-old-", dir=folder))
            target.rename(retired / REPORT_FOLDER)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / "index.html"


def write_site(view: StudyView, out: Path) -> None:
    (out / "plots").mkdir(parents=True)
    (out / "designs").mkdir()
    site, markdown = environment(autoescape=True), environment(autoescape=False)
    shutil.copyfile(Path(__file__).parent / "templates" / "style.css", out / "style.css")

    figures = {
        "discovery": plots.discovery_curve(view, out / "plots" / "discovery.svg"),
        "pareto": plots.pareto(view, out / "plots" / "pareto.svg"),
        "spend": plots.spend(view, out / "plots" / "spend.svg"),
        "proposers": plots.proposer_comparison(view, out / "plots" / "proposers.svg"),
    }
    baselines = [design for design in view.designs if design.is_baseline]
    for design in view.designs:
        curves = plots.training_curves(design, baselines, out / "plots" / f"curves-{design.slug}.svg")
        context = {"view": view, "design": design, "curves": curves, "root": "../"}
        (out / "designs" / f"{design.slug}.html").write_text(
            site.get_template("design.html.j2").render(context)
        )
        (out / "designs" / f"{design.slug}.md").write_text(
            markdown.get_template("design.md.j2").render(context)
        )
    context = {"view": view, "figures": figures, "tree": lineage_tree(view), "root": ""}
    (out / "index.html").write_text(site.get_template("index.html.j2").render(context))
    write_csv(view, out)
    write_tensorboard(view, out / "tensorboard")


def lineage_tree(view: StudyView) -> list[dict]:
    """Proposed designs as a forest along first parents: [{design, children: [...]}, ...]."""
    proposed = {design.slug: design for design in view.designs if not design.is_baseline}
    nodes = {key: {"design": design, "children": []} for key, design in proposed.items()}
    roots = []
    for design in sorted(proposed.values(), key=lambda design: design.created_at):
        parent = design.parents[0][0] if design.parents else None
        (nodes[parent]["children"] if parent in nodes else roots).append(nodes[design.slug])
    return roots


RUN_COLUMNS = (
    "design", "design_id", "origin", "run_id", "fidelity", "seed", "status", "metric", "value", "fitness",
    "params", "flops_per_token", "tokens_per_s", "peak_memory_mb", "cost_device_s", "failure_reason",
)  # fmt: skip


def write_csv(view: StudyView, out: Path) -> None:
    """runs.csv (one row per run) and curves.csv (one row per logged step), for people's own tools."""
    with (out / "runs.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(RUN_COLUMNS)
        for design in view.designs:
            for run in design.runs:
                result = run.efficiency
                writer.writerow(cell(value) for value in (
                    design.name, design.id, design.origin, run.id, run.fidelity, run.seed, run.status,
                    view.metric, run.value, run.fitness, result.get("params"), result.get("flops_per_token"),
                    result.get("tokens_per_s"), result.get("peak_memory_mb"), run.cost_device_seconds,
                    run.failure_reason,
                ))  # fmt: skip
    with (out / "curves.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("design", "run_id", "fidelity", "seed", "step", "train_loss"))
        for design in view.designs:
            for run in design.runs:
                for point in run.curve:
                    writer.writerow(
                        (cell(design.name), run.id, run.fidelity, run.seed, point.step, point.train_loss)
                    )


def cell(value: object) -> object:
    """A CSV cell a spreadsheet will not evaluate: text starting with = + - @ gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
