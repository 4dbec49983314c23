"""Does the screen rank designs the way full fidelity does? Rank agreement between fidelities.

    python -m benchmarks.fidelity [--task mqar] [--designs 20] [--seed 0]

Trains the built-in baselines and `--designs` grammar designs drawn at random (fixed seed) at each
fidelity of `discover init`'s study (screen: [settings] with [screen] on top; full: [settings]),
one seed each, in this process (all of it is trusted code), and reports Spearman's rho between the
two rankings with a bootstrap interval over designs, how many designs sit at the metric's optimum
(ties there carry no rank information), and whether the screen's top fifth holds the full
fidelity's best. Writes the `fidelity-<task>` section of RESULTS.md after every design, so a run
cut short still records what it measured.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from benchmarks.results import machine, write_section
from discover.agents.config import StudyConfig
from discover.agents.context import fidelity_specs
from discover.agents.grammar import render, sample
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.tasks.base import Task

BOOTSTRAP = 2000
TARGET_RHO = 0.8  # issue 22: the screen must predict full-fidelity rank at least this well


def designs(count: int, seed: int, folder: Path) -> dict[str, Path]:
    """The baselines, then `count` distinct grammar designs drawn uniformly."""
    found = dict(builtin_baselines())
    rng = random.Random(seed)
    while len(found) < len(builtin_baselines()) + count:
        genome = sample(rng)
        path = folder / f"grammar_{genome.key()[:10]}.py"
        if path.stem not in found:
            path.write_text(render(genome))
            found[path.stem] = path
    return found


def ranks_agree(task: Task, screen: list[float], full: list[float], seed: int) -> tuple[float, float, float]:
    """Spearman's rho of the two fidelities' metrics (oriented so higher is better), and a 95%
    percentile bootstrap interval over designs."""
    sign = 1.0 if task.higher_is_better else -1.0
    a, b = sign * np.asarray(screen), sign * np.asarray(full)
    rho = float(spearmanr(a, b).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(a), len(a))
        if np.ptp(a[pick]) > 0 and np.ptp(b[pick]) > 0:  # a resample with one value has no rank
            draws.append(spearmanr(a[pick], b[pick]).statistic)
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (float("nan"), float("nan"))
    return rho, float(low), float(high)


def section(task: Task, rows: list[dict], steps: tuple[int, int], total: int, seed: int) -> str:
    screen_steps, full_steps = steps
    lines = [
        f"## Rank agreement between fidelities ({task.name})",
        "",
        f"Machine: {machine()}. {len(rows)} of {total} designs trained (the built-in baselines, then "
        f"grammar designs drawn at random with seed {seed}), one seed each, at `discover init`'s "
        f"fidelities: screen {screen_steps} steps, full {full_steps} steps. "
        f"Metric: {task.metric} ({'higher' if task.higher_is_better else 'lower'} is better).",
        "",
    ]
    if len(rows) >= 4:
        screen, full = [r["screen"] for r in rows], [r["full"] for r in rows]
        rho, low, high = ranks_agree(task, screen, full, seed)
        at_optimum = sum(abs(v - task.metric_optimum) < 0.01 for v in full)
        best = max(full) if task.higher_is_better else min(full)
        ordered = sorted(rows, key=lambda r: r["screen"], reverse=task.higher_is_better)
        top = ordered[: max(1, len(rows) // 5)]
        near_best = sum(abs(r["full"] - best) < 0.01 for r in top)
        verdict = "meets" if low >= TARGET_RHO else ("misses" if high < TARGET_RHO else "cannot yet tell")
        lines += [
            f"Spearman's rho, screen against full: **{rho:.2f}** (95% bootstrap interval {low:.2f} "
            f"to {high:.2f}); target {TARGET_RHO}: {verdict}. Designs within 0.01 of the optimum at "
            f"full fidelity: {at_optimum} of {len(rows)} (ties: they carry no rank). Of the screen's "
            f"top fifth ({len(top)} designs), {near_best} are within 0.01 of full fidelity's best.",
            "",
        ]
    lines += ["| design | screen | full | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['design']} | {r['screen']:.4f} | {r['full']:.4f} | {r['seconds']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mqar")
    parser.add_argument("--designs", type=int, default=20, help="grammar designs beside the baselines")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = StudyConfig(task=args.task)
    specs = fidelity_specs(config)
    task, screen_cfg, full_cfg = (
        specs["full"].parts[0].task,
        specs["screen"].parts[0].config,
        specs["full"].parts[0].config,
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fidelity-") as scratch:
        candidates = designs(args.designs, args.seed, Path(scratch))
        for name, path in candidates.items():
            started = time.perf_counter()
            screen = train(path, task, screen_cfg, seed=args.seed).value
            full = train(path, task, full_cfg, seed=args.seed).value
            rows.append(
                {"design": name, "screen": screen, "full": full, "seconds": time.perf_counter() - started}
            )
            print(rows[-1], flush=True)
            write_section(
                f"fidelity-{task.name}",
                section(task, rows, (screen_cfg.steps, full_cfg.steps), len(candidates), args.seed),
            )


if __name__ == "__main__":
    main()
