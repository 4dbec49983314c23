"""Which settings of a synthetic task separate the built-in baselines? The evidence for each task's
defaults.

    python -m benchmarks.difficulty --task mqar --set d_model=32 num_kv_pairs=8
        [--baselines deltanet softmax_attention ...] [--seed 0] [--jobs 2]

Trains the named baselines (default: all seven) at full fidelity, the task's defaults with `--set`'s
overrides, one seed. A task's defaults should leave at most two baselines within 0.01 of the
metric's optimum while softmax attention stays far above linear attention on recall (issue 22).
Each run is kept in `benchmarks/difficulty.json`; the `difficulty` section of RESULTS.md lists
every setting tried, per task, with the current defaults marked. benchmarks/suite_baselines.py
reuses the runs made at what are now the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from benchmarks.results import cache_config, machine, write_section
from benchmarks.suite_baselines import NEAR, train_baseline
from discover.experiments.baselines import builtin_baselines
from discover.experiments.tasks import get_task

CACHE = Path(__file__).parent / "difficulty.json"


def run_name(row: dict) -> str:
    """One run's identity: task, baseline, seed and every setting it trained with."""
    settings = json.dumps(cache_config(row["config"]), sort_keys=True)
    return f"{row['task']}/{row['baseline']}/{row['seed']}/{settings}"


def overrides_of(row: dict) -> dict:
    """The row's settings that differ from the task's defaults today."""
    defaults = cache_config(get_task(row["task"]).config({}).model_dump())
    return {k: v for k, v in cache_config(row["config"]).items() if defaults.get(k) != v}


def label(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "**defaults**"


def section(rows: list[dict]) -> str:
    baselines = sorted(builtin_baselines())
    lines = [
        "## Task difficulty: which settings separate the baselines",
        "",
        f"Machine: {machine()}. Full fidelity (the task's steps), one seed (0), each setting the "
        "task's defaults with the overrides shown; **defaults** marks today's. Target (issue 22): at "
        f"most two baselines within {NEAR} of the optimum, softmax attention far above linear "
        "attention on recall.",
        "",
    ]
    for task_name in sorted({row["task"] for row in rows}):
        task = get_task(task_name)
        mine = [row for row in rows if row["task"] == task_name]
        lines += [
            f"### {task_name} ({task.metric})",
            "",
            "| settings | " + " | ".join(baselines) + " | at the optimum | softmax − linear |",
            "|---|" + "---|" * (len(baselines) + 2),
        ]
        by_setting: dict[str, dict[str, float]] = {}
        for row in mine:
            by_setting.setdefault(label(overrides_of(row)), {})[row["baseline"]] = row["value"]
        for setting, values in sorted(by_setting.items()):
            near = sum(abs(v - task.metric_optimum) < NEAR for v in values.values())
            gap = (
                f"{values['softmax_attention'] - values['linear_attention']:+.3f}"
                if {"softmax_attention", "linear_attention"} <= values.keys()
                else "—"
            )
            cells = [f"{values[b]:.3f}" if b in values else "—" for b in baselines]
            lines.append(f"| {setting} | " + " | ".join(cells) + f" | {near} of {len(values)} | {gap} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--baselines", nargs="*", default=sorted(builtin_baselines()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)  # strings: the task's config types them
    config = get_task(args.task).config(overrides).model_dump()  # fails here on a bad setting
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    stored = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    cache = {run_name(row): row for row in stored.values()}  # named afresh: settings come and go

    def name(baseline: str) -> str:
        return run_name({"task": args.task, "baseline": baseline, "seed": args.seed, "config": config})

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(train_baseline, args.task, baseline, overrides, args.seed, threads)
            for baseline in args.baselines
            if name(baseline) not in cache
        ]
        for future in as_completed(futures):
            row = future.result()
            cache[run_name(row)] = row
            CACHE.write_text(json.dumps(cache, indent=1))
            seconds = row["seconds"]
            print(f"{args.task} {row['baseline']} {label(overrides)}: {row['value']:.4f} in {seconds:.0f} s")
    write_section("difficulty", section(list(cache.values())))


if __name__ == "__main__":
    main()
