"""Train every built-in baseline on the default tasks and record quality, size and speed.

    python benchmarks/baselines.py                # CPU table: default mqar and lm configurations
    python benchmarks/baselines.py --gpu-scale    # GPU: tokens/s at the ASI-Arch exploration scale

Writes its sections of benchmarks/RESULTS.md. The GPU scale is 8 layers, d_model 256, 8 heads,
context 2048, bf16 autocast: one ASI-Arch exploration run is 1B tokens, so tokens/s sets its cost.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.results import machine, write_section
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.tasks import get_task
from discover.vetting.scoring import fitness

GPU_SCALE = {"n_layers": 8, "d_model": 256, "num_heads": 8, "seq_len": 2048, "batch_size": 8}


# Cheapest first, so that an interrupted run has recorded the most rows.
CPU_ORDER = (
    "softmax_attention",
    "linear_attention",
    "retention",
    "mamba2",
    "deltanet",
    "gated_deltanet",
    "gla",
)


def cpu_table(tasks: list[str], seeds: int) -> None:
    """Trains baseline by baseline and rewrites the section after every row."""
    header = (
        "## Baselines on the default CPU configurations\n\n"
        f"Machine: {machine()}. Seeds per cell: {seeds} (median, ± stdev). "
        "Metric: mqar query accuracy (higher is better), lm validation bits per byte (lower is better). "
        "Fitness is against the task's first reference baseline (0.5 = parity). "
        "FLOPs are forward matrix-product FLOPs per token. Tokens/s are training "
        "throughput on an otherwise idle machine; wall is the whole run including evaluation.\n\n"
        "| task | baseline | metric | fitness | params | FLOPs/token | tokens/s | wall |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    rows: list[str] = []
    names = sorted(
        builtin_baselines(), key=lambda n: CPU_ORDER.index(n) if n in CPU_ORDER else len(CPU_ORDER)
    )
    references = {}
    for name in names:
        for task_name in tasks:
            task = get_task(task_name)
            runs = [train(builtin_baselines()[name], task, task.config(), seed=seed) for seed in range(seeds)]
            reference_name = task.reference_baselines[0]
            if name == reference_name:
                references[task_name] = runs[0]
            reference = references.get(task_name)
            score = f"{fitness(runs[0], reference, task).value:.2f}" if reference else "–"
            values = [r.value for r in runs]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            first = runs[0]
            rows.append(
                f"| {task_name} | {name} | {statistics.median(values):.3f}{spread} | {score} | "
                f"{first.params:,} | {first.flops_per_token / 1e3:,.0f}k | "
                f"{statistics.median(r.tokens_per_s for r in runs):,.0f} | "
                f"{statistics.median(r.wall_time_s for r in runs):.0f} s |"
            )
            print(rows[-1], flush=True)
            write_section("baselines-cpu", header + "\n".join(sorted(rows)))


def gpu_table(steps: int) -> str:
    task = get_task("lm")
    cfg = task.config({**GPU_SCALE, "steps": steps, "log_every": max(1, steps // 4), "eval_windows": 8})
    rows = []
    for name, path in builtin_baselines().items():
        result = train(path, task, cfg, seed=0, device=torch.device("cuda"))
        hours_per_billion = 1e9 / result.tokens_per_s / 3600
        memory = f"{result.peak_memory_mb:,.0f} MB"
        rows.append(f"| {name} | {result.tokens_per_s:,.0f} | {hours_per_billion:.2f} | {memory} |")
        print(rows[-1], flush=True)
    return (
        "## Training throughput at the ASI-Arch exploration scale (GPU)\n\n"
        f"Machine: {machine()}. 8 layers, d_model 256, 8 heads, context 2048, batch 8, bf16 autocast, "
        f"{steps} steps (throughput after the first logging interval). Target: DeltaNet >= 560k tokens/s "
        "on one H100, i.e. <= 0.5 GPU-hours per 1B-token exploration run.\n\n"
        "| baseline | tokens/s | GPU-hours per 1B tokens | peak memory |\n|---|---|---|---|\n"
        + "\n".join(rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["mqar", "lm"])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--gpu-scale", action="store_true", help="measure GPU throughput instead")
    parser.add_argument("--gpu-steps", type=int, default=40)
    args = parser.parse_args()
    if args.gpu_scale:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu-scale needs a CUDA GPU")
        write_section("baselines-gpu", gpu_table(args.gpu_steps))
    else:
        cpu_table(args.tasks, args.seeds)


if __name__ == "__main__":
    main()
