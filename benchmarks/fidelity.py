"""Does the screen rank designs the way full fidelity does? Rank agreement between fidelities.

    python -m benchmarks.fidelity [--task suite] [--designs 20] [--seed 0] [--jobs 2]

Trains the built-in baselines and `--designs` grammar designs drawn at random (fixed seed) at each
fidelity of `discover init`'s study (screen: [settings] with [screen] on top; full: [settings]) on
every task of `--task` (a task or a suite), one seed each, in this process's children (all of it is
trusted code), `--jobs` at a time with the cores shared out. Per task and for the suite's mean it
reports Spearman's rho between the two rankings with a bootstrap interval over designs, how many
designs sit at the metric's optimum (ties there carry no rank information), and whether the
screen's top fifth holds the full fidelity's best. Each finished run is kept in
`benchmarks/fidelity.json`, so an interrupted run resumes, and the `fidelity-<task>` section of
RESULTS.md is rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.results import cache_config, machine, write_section
from discover.agents.config import StudyConfig
from discover.agents.context import fidelity_specs
from discover.agents.grammar import render, sample
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.runspec import RunSpec
from discover.experiments.suite import SuiteSpec
from discover.experiments.tasks import get_task

CACHE = Path(__file__).parent / "fidelity.json"
BOOTSTRAP = 2000
TARGET_RHO = 0.8  # issue 22: the screen must predict full-fidelity rank at least this well
NEAR = 0.01  # "at the optimum": within this of the metric's perfect value
FIDELITIES = ("screen", "full")


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


def run_one(
    path: str, task_name: str, settings: dict[str, Any], seed: int, threads: int
) -> tuple[float, float]:
    """One training run in a child process: the held-out value and the seconds it took."""
    torch.set_num_threads(threads)
    task = get_task(task_name)
    started = time.perf_counter()
    value = train(Path(path), task, task.config(settings), seed=seed, device=torch.device("cpu")).value
    return value, time.perf_counter() - started


def ranks_agree(screen: list[float], full: list[float], sign: float, seed: int) -> tuple[float, float, float]:
    """Spearman's rho of the two fidelities' values (times `sign`, so higher is better), and a 95%
    percentile bootstrap interval over designs."""
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


def agreement(
    name: str, screen: list[float], full: list[float], optimum: float, higher: bool, seed: int
) -> str:
    """One row of the summary table: rho, its interval, the verdict, ties at the optimum, and how
    much of the screen's top fifth is near full fidelity's best."""
    if len(full) < 4:
        return f"| {name} | — | — | — | — | — |"
    rho, low, high = ranks_agree(screen, full, 1.0 if higher else -1.0, seed)
    verdict = "meets" if low >= TARGET_RHO else ("misses" if high < TARGET_RHO else "cannot yet tell")
    best = max(full) if higher else min(full)
    order = sorted(range(len(full)), key=lambda i: screen[i], reverse=higher)
    top = order[: max(1, len(full) // 5)]
    at_optimum = sum(abs(v - optimum) < NEAR for v in full)
    near_best = sum(abs(full[i] - best) < NEAR for i in top)
    return (
        f"| {name} | **{rho:.2f}** | {low:.2f} to {high:.2f} | {verdict} | {at_optimum} of {len(full)} "
        f"| {near_best} of {len(top)} |"
    )


def section(spec: dict[str, SuiteSpec], names: list[str], results: dict[str, dict], seed: int) -> str:
    """The `fidelity-<task>` section: the summary per task and for the mean, then every design."""
    parts = [part.task for part in spec["full"].parts]
    done = [n for n in names if all(f"{t.name}/{n}/{f}" in results for t in parts for f in FIDELITIES)]
    steps = {f: ", ".join(sorted({str(p.config.steps) for p in spec[f].parts})) for f in FIDELITIES}
    lines = [
        f"## Rank agreement between fidelities ({spec['full'].suite.name})",
        "",
        f"Machine: {machine()}; 2 runs at a time, the cores shared out. {len(done)} of {len(names)} "
        f"designs trained on every task (the {len(builtin_baselines())} built-in baselines, then grammar "
        f"designs drawn at random with seed {seed}), one seed each, at `discover init`'s fidelities: "
        f"screen {steps['screen']} steps, full {steps['full']} steps. Spearman's rho between the "
        f"screen's and full fidelity's ranking of the designs, 95% bootstrap interval over designs; "
        f"target {TARGET_RHO}. Designs within {NEAR} of the optimum at full fidelity tie there and "
        "carry no rank.",
        "",
        "| task | rho | interval | target | at the optimum (full) | screen's top fifth near full's best |",
        "|---|---|---|---|---|---|",
    ]
    value = {
        (t.name, n, f): results.get(f"{t.name}/{n}/{f}", {}).get("value")
        for t in parts
        for n in names
        for f in FIDELITIES
    }
    for task in parts:
        screen, full = ([value[(task.name, n, f)] for n in done] for f in FIDELITIES)
        lines.append(agreement(task.name, screen, full, task.metric_optimum, task.higher_is_better, seed))
    if len(parts) > 1:
        mean = {f: [sum(value[(t.name, n, f)] for t in parts) / len(parts) for n in done] for f in FIDELITIES}
        first = parts[0]  # a suite's tasks share their metric's direction and optimum
        row = agreement(
            "**mean over tasks**",
            mean["screen"],
            mean["full"],
            first.metric_optimum,
            first.higher_is_better,
            seed,
        )
        lines.append(row)
    lines += ["", "Each cell: screen → full.", ""]
    lines.append("| design | " + " | ".join(t.name for t in parts) + " | seconds |")
    lines.append("|---|" + "---|" * (len(parts) + 1))
    for name in names:
        cells = []
        for task in parts:
            screen, full = value[(task.name, name, "screen")], value[(task.name, name, "full")]
            cells.append(f"{screen:.3f} → {full:.3f}" if screen is not None and full is not None else "—")
        seconds = sum(
            results.get(f"{t.name}/{name}/{f}", {}).get("seconds", 0.0) for t in parts for f in FIDELITIES
        )
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="suite", help="a task or a suite")
    parser.add_argument("--designs", type=int, default=20, help="grammar designs beside the baselines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    spec = fidelity_specs(StudyConfig(task=args.task))
    spec = {f: spec[f] for f in FIDELITIES}
    results: dict[str, dict] = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with tempfile.TemporaryDirectory(prefix="fidelity-") as scratch:
        candidates = designs(args.designs, args.seed, Path(scratch))
        names = list(candidates)

        # Design by design, so a run cut short has whole designs for the suite's mean.
        def stale(key: str, part: RunSpec) -> bool:
            today = cache_config(part.config.model_dump())
            return key not in results or cache_config(results[key]["config"]) != today

        todo = [
            (f"{part.task.name}/{name}/{fidelity}", path, part)
            for name, path in candidates.items()
            for fidelity in FIDELITIES
            for part in spec[fidelity].parts
            if stale(f"{part.task.name}/{name}/{fidelity}", part)
        ]
        with ProcessPoolExecutor(args.jobs) as pool:
            running = {
                pool.submit(
                    run_one, str(path), part.task.name, part.config.model_dump(), args.seed, threads
                ): (key, part)
                for key, path, part in todo
            }
            for future in as_completed(running):
                key, part = running[future]
                value, seconds = future.result()
                config = cache_config(part.config.model_dump())
                results[key] = {"value": value, "seconds": seconds, "config": config}
                print(key, f"{value:.4f}", f"{seconds:.0f}s", flush=True)
                CACHE.write_text(json.dumps(results, indent=1, sort_keys=True))
                write_section(f"fidelity-{args.task}", section(spec, names, results, args.seed))


if __name__ == "__main__":
    main()
