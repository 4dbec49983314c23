"""The built-in baselines on real English text with a BPE tokenizer, on the CPU.

    python -m benchmarks.lm_baselines [--seeds 3] [--jobs 2] [--vocab 2048]

The corpus is the Python language reference that ships with every Python (`pydoc_data.topics`,
about 0.5 MB of English prose and code), written as JSON lines, a document per topic, so the run
exercises the JSON-lines reader and a BPE trained on the corpus; the lm task's other settings are
its defaults (`cpu-tiny`). Every baseline on `--seeds` seeds, in this process's children, `--jobs`
at a time with the cores shared out. Finished runs are kept in `benchmarks/lm_baselines.json`, and
the `lm-bpe-baselines` section of RESULTS.md is rewritten after each.
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

from benchmarks.results import machine, write_section
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.tasks import get_task

CACHE = Path(__file__).parent / "lm_baselines.json"


def write_corpus(folder: Path) -> Path:
    from pydoc_data.topics import topics

    path = folder / "python-reference.jsonl"
    path.write_text("".join(json.dumps({"topic": k, "text": v}) + "\n" for k, v in sorted(topics.items())))
    return path


def run_one(baseline: str, settings: dict, seed: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    task = get_task("lm")
    cfg = task.config(settings)
    started = time.perf_counter()
    result = train(builtin_baselines()[baseline], task, cfg, seed=seed, device=torch.device("cpu"))
    return {
        "baseline": baseline, "seed": seed, "bits_per_byte": result.value, "loss": result.metrics["loss"],
        "tokens_per_s": result.tokens_per_s, "params": result.params,
        "seconds": time.perf_counter() - started,
    }  # fmt: skip


def cell(values: list[float], digits: int = 3) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f} (1 seed)" if values else "—"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} ({len(values)})"


def section(rows: list[dict], settings: dict, tokens: int, jobs: int) -> str:
    cfg = get_task("lm").config(settings)
    lines = [
        "## The built-in baselines on real text with a BPE tokenizer (lm, CPU)",
        "",
        f"Machine: {machine()}; {jobs} runs at a time, the cores shared out. Corpus: the Python "
        f"language reference (`pydoc_data.topics`, JSON lines, {tokens:,} training tokens); a "
        f"byte-level BPE of {cfg.vocab_size} tokens trained on it; the lm task's defaults otherwise "
        f"({cfg.steps} steps of {cfg.batch_size} x {cfg.seq_len} tokens, {cfg.n_layers} x {cfg.d_model}). "
        "Mean ± standard deviation over seeds (number of seeds); held-out bits per byte (lower is "
        "better) and nats per token; tokens/s per CPU thread-share, for scale only.",
        "",
        "| baseline | bits per byte | nats per token | parameters | tokens/s |",
        "|---|---|---|---|---|",
    ]
    for baseline in sorted(builtin_baselines()):
        mine = [row for row in rows if row["baseline"] == baseline]
        if mine:
            bits, nats = cell([r["bits_per_byte"] for r in mine]), cell([r["loss"] for r in mine])
            speed = statistics.median(r["tokens_per_s"] for r in mine)
            lines.append(f"| {baseline} | {bits} | {nats} | {mine[0]['params']:,} | {speed:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=2048)
    args = parser.parse_args()
    results: dict[str, dict] = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with tempfile.TemporaryDirectory(prefix="lm-baselines-") as scratch:
        settings = {"corpus": str(write_corpus(Path(scratch))), "tokenizer": "bpe", "vocab_size": args.vocab}
        task = get_task("lm")
        tokens = sum(
            len(a) for a in task.prepared(task.config(settings)).train.arrays
        )  # BPE trained once here
        todo = [
            (baseline, seed)
            for seed in range(args.seeds)
            for baseline in sorted(builtin_baselines())
            if f"{baseline}/{args.vocab}/{seed}" not in results
        ]
        with ProcessPoolExecutor(args.jobs) as pool:
            running = {pool.submit(run_one, b, settings, s, threads): (b, s) for b, s in todo}
            for future in as_completed(running):
                row = future.result()
                results[f"{row['baseline']}/{args.vocab}/{row['seed']}"] = row
                print(row, flush=True)
                CACHE.write_text(json.dumps(results, indent=1, sort_keys=True))
                rows = [r for key, r in results.items() if key.split("/")[1] == str(args.vocab)]
                write_section("lm-bpe-baselines", section(rows, settings, tokens, args.jobs))


if __name__ == "__main__":
    main()
