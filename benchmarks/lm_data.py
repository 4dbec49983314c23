"""Does reading the lm corpus by memory map cost training throughput? Memory-mapped against in-memory
training tokens.

    python -m benchmarks.lm_data [--repeats 5] [--steps 150]

Trains one baseline on the lm task's default corpus (the standard library as bytes; the data as
`discover` prepares it) in this process, alternating between the prepared token file read by
memory map (what jobs do) and the same tokens copied into memory, and compares the median training
tokens/s. Target (issue 23): the memory map within 5% of memory. Writes the `lm-data` section of
RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
from unittest import mock

import numpy as np
import torch

from benchmarks.results import machine, write_section
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.tasks import get_task, lm_data

BASELINE = "softmax_attention"


real_open_train = lm_data.open_train  # what jobs do: the prepared tokens by memory map


def in_memory(cfg) -> lm_data.TrainTokens:
    """The same tokens, copied into memory."""
    mapped = real_open_train(cfg)
    return lm_data.TrainTokens(tuple(np.array(a) for a in mapped.arrays), mapped.version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    task = get_task("lm")
    cfg = task.config({"steps": args.steps, "log_every": 25, "eval_windows": 4})
    task.prepare(cfg)
    speeds: dict[str, list[float]] = {"memory map": [], "in memory": []}
    for repeat in range(args.repeats):
        for name in speeds if repeat % 2 == 0 else reversed(list(speeds)):
            loader = real_open_train if name == "memory map" else in_memory
            with mock.patch.object(lm_data, "open_train", loader):
                result = train(builtin_baselines()[BASELINE], task, cfg, device=torch.device("cpu"))
            speeds[name].append(result.tokens_per_s)
            print(name, f"{result.tokens_per_s:,.0f} tokens/s", flush=True)
    mapped, memory = (statistics.median(speeds[name]) for name in ("memory map", "in memory"))
    ratio = mapped / memory
    lines = [
        "## Memory-mapped lm corpus against in-memory tokens",
        "",
        f"Machine: {machine()}. {BASELINE} on the lm task's default corpus (bytes of the standard "
        f"library), {args.steps} steps of {cfg.batch_size} x {cfg.seq_len} tokens, {args.repeats} runs "
        "each, alternating; training tokens/s after the first logging interval, median.",
        "",
        "| training tokens | median tokens/s | runs |",
        "|---|---|---|",
        *(f"| {name} | {statistics.median(v):,.0f} | {', '.join(f'{x:,.0f}' for x in v)} |"
          for name, v in speeds.items()),
        "",
        f"Memory map / in memory: **{ratio:.3f}** (target: at least 0.95: "
        f"{'met' if ratio >= 0.95 else 'missed'}).",
    ]  # fmt: skip
    write_section("lm-data", "\n".join(lines))


if __name__ == "__main__":
    main()
