"""The report's figures, drawn with matplotlib as SVG files. Each function takes plain data from
`data` and writes one file; none returns anything but whether it had something to draw."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
from matplotlib.ticker import EngFormatter

from discover.report.data import DesignView, StudyView

plt.rcParams.update({
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "svg.hashsalt": "discover",  # the same study draws the same bytes
    "text.parse_math": False,  # design names are LLM-written: a "$" must not start mathtext
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
})  # fmt: skip
BASELINE_STYLE = {"marker": "s", "color": "0.35"}
COLORS = {"evolution": "tab:blue", "random": "tab:orange", "llm": "tab:green", "human": "tab:purple"}


def save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)


def discovery_curve(view: StudyView, path: Path) -> bool:
    """Best screening fitness, and verified claims, against device-hours spent."""
    if not view.discovery:
        return False
    hours = [point.device_hours for point in view.discovery]
    figure, best_axis = plt.subplots(figsize=(7, 3.2))
    best_axis.step(hours, [p.best_fitness for p in view.discovery], where="post", color="tab:blue")
    best_axis.set_xlabel("device-hours spent")
    best_axis.set_ylabel("best screening fitness", color="tab:blue")
    count_axis = best_axis.twinx()
    count_axis.step(hours, [p.verified_claims for p in view.discovery], where="post", color="tab:red")
    count_axis.set_ylabel("verified claims (q <= alpha)", color="tab:red")
    count_axis.grid(False)
    count_axis.spines["right"].set_visible(True)
    count_axis.yaxis.get_major_locator().set_params(integer=True)
    save(figure, path)
    return True


def pareto_front(
    points: list[tuple[float, float]], better: Callable[[float, float], bool]
) -> list[tuple[float, float]]:
    """Points (cost-free quantity x, quality y) not dominated by another: more x and better y (by
    the task's `better`)."""
    front = []
    for x, y in sorted(points, key=lambda point: -point[0]):
        if not front or better(y, front[-1][1]):
            front.append((x, y))
    return front


def view_better(view: StudyView) -> Callable[[float, float], bool]:
    """Whether one metric value is better than another in this study (a non-finite one never is)."""

    def better(a: float, b: float) -> bool:
        if not math.isfinite(a):
            return False
        return not math.isfinite(b) or (a > b if view.higher_is_better else a < b)

    return better


def pareto(view: StudyView, path: Path) -> bool:
    """Screening metric against throughput and against parameters, baselines marked."""
    screened = [design for design in view.designs if design.screen is not None]
    if not screened:
        return False
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for axis, key, label in (
        (axes[0], "tokens_per_s", "training tokens/s"),
        (axes[1], "params", "parameters"),
    ):
        proposed = [d for d in screened if not d.is_baseline]
        for origin in sorted({d.origin for d in proposed}):
            mine = [d for d in proposed if d.origin == origin]
            axis.scatter(
                [d.screen[key] for d in mine], [d.screen["value"] for d in mine],
                s=16, alpha=0.75, color=COLORS.get(origin), label=origin,
            )  # fmt: skip
        for design in (d for d in screened if d.is_baseline):
            axis.scatter(design.screen[key], design.screen["value"], s=30, **BASELINE_STYLE)
            axis.annotate(
                design.name, (design.screen[key], design.screen["value"]), fontsize=7,
                xytext=(3, 3), textcoords="offset points",
            )  # fmt: skip
        if key == "tokens_per_s":
            front = pareto_front([(d.screen[key], d.screen["value"]) for d in screened], view_better(view))
            axis.plot(*zip(*front, strict=True), color="tab:red", lw=1, alpha=0.6, label="Pareto front")
        axis.xaxis.set_major_formatter(EngFormatter(sep=""))  # 20k, 1.5M: no mathtext needed
        axis.set_xlabel(label)
    axes[0].set_ylabel(f"screening {view.metric}")
    axes[0].legend(fontsize=7)
    save(figure, path)
    return True


def training_curves(design: DesignView, baselines: list[DesignView], path: Path) -> bool:
    """The design's training loss at each fidelity it ran, beside the baselines' at the same."""
    fidelities = [f for f in ("screen", "full") if any(r.curve for r in design.runs if r.fidelity == f)]
    if not fidelities:
        return False
    figure, axes = plt.subplots(1, len(fidelities), figsize=(3.8 * len(fidelities), 3), squeeze=False)
    for axis, fidelity in zip(axes[0], fidelities, strict=True):
        for index, baseline in enumerate(baselines):
            for number, run in enumerate(r for r in baseline.runs if r.fidelity == fidelity and r.curve):
                axis.plot(
                    [p.step for p in run.curve], [p.train_loss for p in run.curve], ls="--", lw=1,
                    color=f"C{index + 1}", alpha=0.7, label=baseline.name if number == 0 else None,
                )  # fmt: skip
        for number, run in enumerate(r for r in design.runs if r.fidelity == fidelity and r.curve):
            axis.plot(
                [p.step for p in run.curve], [p.train_loss for p in run.curve], lw=1.6, color="C0",
                label="this design" if number == 0 else None,
            )  # fmt: skip
        axis.set_title(f"{fidelity} fidelity")
        axis.set_xlabel("step")
        axis.legend(fontsize=7)
    axes[0][0].set_ylabel("training loss")
    save(figure, path)
    return True


def spend(view: StudyView, path: Path) -> bool:
    """Device-minutes charged by kind of job."""
    if not view.spend_s:
        return False
    kinds = sorted(view.spend_s, key=view.spend_s.get)
    figure, axis = plt.subplots(figsize=(6, 0.5 + 0.4 * len(kinds)))
    axis.barh(kinds, [view.spend_s[kind] / 60 for kind in kinds], color="tab:blue")
    axis.set_xlabel("device-minutes")
    axis.grid(axis="y", visible=False)
    save(figure, path)
    return True


def proposer_comparison(view: StudyView, path: Path) -> bool:
    """Best screening fitness so far against experiments, one line per proposer (when the study
    holds designs from more than one, e.g. a random-search control)."""
    proposed = [d for d in view.designs if not d.is_baseline and d.screen_fitness is not None]
    origins = sorted({d.origin for d in proposed})
    if len(origins) < 2:
        return False
    figure, axis = plt.subplots(figsize=(6, 3))
    for origin in origins:
        ordered = sorted((d for d in proposed if d.origin == origin), key=lambda d: d.created_at)
        best, so_far = 0.0, []
        for design in ordered:
            best = max(best, design.screen_fitness or 0.0)
            so_far.append(best)
        axis.step(range(1, len(so_far) + 1), so_far, where="post", label=origin, color=COLORS.get(origin))
    axis.set_xlabel("designs screened")
    axis.set_ylabel("best screening fitness")
    axis.legend()
    save(figure, path)
    return True
