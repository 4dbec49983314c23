"""Do the suite's tasks separate the built-in baselines? Every baseline on every task of a suite, at
screening and full fidelity, on several seeds.

    python -m benchmarks.suite_baselines [--suite suite] [--seeds 3] [--jobs 2] [--fidelities screen full]

Screening is each task's own cheap run (`Task.screen_settings`), full fidelity the task's defaults:
what a study on the suite trains when its discover.toml sets neither. Runs in this process's
children (the baselines are trusted code), `--jobs` at a time with the cores shared out. Each
finished run is kept in `benchmarks/suite_baselines.json`, so an interrupted run (or one with more
seeds) resumes, and the `suite-baselines` section of RESULTS.md is rewritten after every run. Per
task it reports how many baselines sit within 0.01 of the metric's optimum (target: at most two),
the gap between softmax attention and linear attention (recall tasks: attention far ahead), and
the median seconds of one screen (target: about 60 s at most).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from benchmarks.results import cache_config, machine, write_section
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.tasks import SUITES, get_task

CACHE = Path(__file__).parent / "suite_baselines.json"
DIFFICULTY_CACHE = Path(__file__).parent / "difficulty.json"
NEAR = 0.01  # "at the optimum": within this of the metric's perfect value


def settings(task_name: str, fidelity: str) -> dict:
    task = get_task(task_name)
    return dict(task.screen_settings) if fidelity == "screen" else {}


def train_baseline(task_name: str, baseline: str, overrides: dict, seed: int, threads: int) -> dict:
    """One baseline trained on one task with `overrides` of the task's settings (trusted code, here)."""
    torch.set_num_threads(threads)
    task = get_task(task_name)
    cfg = task.config(overrides)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="suite-baselines-"):
        result = train(builtin_baselines()[baseline], task, cfg, seed=seed, device=torch.device("cpu"))
    return {
        "task": task_name, "baseline": baseline, "seed": seed, "value": result.value, "steps": cfg.steps,
        "seconds": time.perf_counter() - started, "config": cfg.model_dump(),
    }  # fmt: skip


def run_one(task_name: str, baseline: str, fidelity: str, seed: int, threads: int) -> dict:
    row = train_baseline(task_name, baseline, settings(task_name, fidelity), seed, threads)
    return {**row, "fidelity": fidelity}


def adopt_difficulty_runs(cache: dict[str, dict]) -> None:
    """Full-fidelity runs that benchmarks/difficulty.py already made at today's defaults count here."""
    if not DIFFICULTY_CACHE.exists():
        return
    for row in json.loads(DIFFICULTY_CACHE.read_text()).values():
        suite_row = {**row, "fidelity": "full"}
        today = cache_config(get_task(row["task"]).config({}).model_dump())
        mine = cache.get(key(suite_row))
        if cache_config(row["config"]) == today and (mine is None or cache_config(mine["config"]) != today):
            cache[key(suite_row)] = suite_row


def key(row: dict) -> str:
    return f"{row['task']}/{row['baseline']}/{row['fidelity']}/{row['seed']}"


def load_cache() -> dict[str, dict]:
    return json.loads(CACHE.read_text()) if CACHE.exists() else {}


def cell(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)})"


def section(rows: list[dict], tasks: list[str], jobs: int) -> str:
    fidelities = [f for f in ("screen", "full") if any(row["fidelity"] == f for row in rows)]
    baselines = sorted(builtin_baselines())
    lines = [
        "## The built-in baselines on every task of the suite",
        "",
        f"Machine: {machine()}; {jobs} runs at a time, the cores shared out. Mean ± standard deviation "
        "of the held-out metric (number of seeds); screening is each task's own cheap run, full "
        "fidelity the task's defaults (what a study on the suite trains when discover.toml sets "
        "neither). Targets (issue 22): at most two baselines within 0.01 of the optimum on any task; "
        "softmax attention far above linear attention on recall; a screen of one design on one task "
        "in about 60 s at most.",
        "",
    ]
    for task_name in tasks:
        task = get_task(task_name)
        mine = [row for row in rows if row["task"] == task_name]
        if not mine:
            continue
        steps = {f: next((r["steps"] for r in mine if r["fidelity"] == f), None) for f in fidelities}
        lines += [
            f"### {task_name} ({task.metric}; "
            + ", ".join(f"{f} {s} steps" for f, s in steps.items() if s)
            + ")",
            "",
            "| baseline | " + " | ".join(fidelities) + " | seconds per screen |",
            "|---|" + "---|" * len(fidelities) + "---|",
        ]
        means: dict[str, dict[str, float]] = {f: {} for f in fidelities}
        for baseline in baselines:
            cells, screen_seconds = [], []
            for fidelity in fidelities:
                values = [r["value"] for r in mine if r["baseline"] == baseline and r["fidelity"] == fidelity]
                if values:
                    means[fidelity][baseline] = statistics.mean(values)
                cells.append(cell(values))
                if fidelity == "screen":
                    screen_seconds += [
                        r["seconds"] for r in mine if r["baseline"] == baseline and r["fidelity"] == fidelity
                    ]
            seconds = f"{statistics.median(screen_seconds):.0f}" if screen_seconds else "—"
            lines.append(f"| {baseline} | " + " | ".join(cells) + f" | {seconds} |")
        notes = []
        for fidelity in fidelities:
            if means[fidelity]:
                near = sorted(b for b, v in means[fidelity].items() if abs(v - task.metric_optimum) < NEAR)
                notes.append(
                    f"{fidelity}: {len(near)} of {len(means[fidelity])} within {NEAR} of the optimum"
                    + (f" ({', '.join(near)})" if near else "")
                )
        full = means.get("full") or means.get("screen") or {}
        if "softmax_attention" in full and "linear_attention" in full:
            gap = full["softmax_attention"] - full["linear_attention"]
            notes.append(f"softmax attention − linear attention: {gap:+.3f}")
        lines += ["", "; ".join(notes) + ".", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suite", choices=sorted(SUITES))
    parser.add_argument("--tasks", nargs="*", help="only these tasks of the suite")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fidelities", nargs="+", default=["screen", "full"], choices=["screen", "full"])
    args = parser.parse_args()
    tasks = args.tasks or list(SUITES[args.suite])
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    cache = load_cache()
    adopt_difficulty_runs(cache)
    todo = [
        (task, baseline, fidelity, seed)
        for fidelity in args.fidelities
        for seed in range(args.seeds)
        for task in tasks
        for baseline in sorted(builtin_baselines())
    ]

    def done(task: str, baseline: str, fidelity: str, seed: int) -> dict | None:
        row = cache.get(f"{task}/{baseline}/{fidelity}/{seed}")
        # A cached run counts only while the task's settings are those it ran with.
        today = get_task(task).config(settings(task, fidelity)).model_dump()
        if row and cache_config(row["config"]) == cache_config(today):
            return row
        return None

    def write() -> None:  # every cached run of the suite at today's settings, whatever this call ran
        everything = [tuple(name.split("/")) for name in cache]
        items = [(task, baseline, fidelity, int(seed)) for task, baseline, fidelity, seed in everything]
        suite = list(SUITES[args.suite])
        rows = [row for item in items if item[0] in suite and (row := done(*item)) is not None]
        write_section("suite-baselines", section(rows, suite, args.jobs))

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, *item, threads) for item in todo if done(*item) is None]
        for future in as_completed(futures):
            row = future.result()
            cache[key(row)] = row
            CACHE.write_text(json.dumps(cache, indent=1))
            print(f"{key(row)}: {row['value']:.4f} in {row['seconds']:.0f} s", flush=True)
            write()
    write()


if __name__ == "__main__":
    main()
