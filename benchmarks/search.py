"""Search efficiency and loop overhead of `discover run`'s offline proposers.

Runs real studies (the study runner, knowledge base, ledger and process sandbox; grammar designs
are trusted code) with several proposers, several seeds each, for the same number of experiments:
evolution (the default: classic designs first, guided mutation), its ablations (a random initial
population; random mutation), and random search (the control). The MQAR setting is one where
designs spread out (vocab 64, length 64, 16 pairs, d_model 32, 400 steps): linear attention scores
about 0.06, most random designs stay near that, and a few reach 1.0. The studies of a seed run side
by side, one core each where the machine has enough (on two cores, more than two arms share them).
Reports

- search efficiency: the best fitness (what the proposers maximise) and the best held-out accuracy
  after n experiments, and how many experiments each evolution needs to reach random search's
  final best (median over random's seeds); target <= 1/2;
- overhead: the share of charged device time spent outside training steps (sandbox start-up,
  probes, prediction and audit jobs, the study's own bookkeeping); target <= 3%.

Writes the `search` section of benchmarks/RESULTS.md.

    python -m benchmarks.search --seeds 5 --experiments 16 [--arms evolution random]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.results import machine, write_section
from benchmarks.study_overhead import DeviceTime, device_time, table
from discover.agents.config import StudyConfig
from discover.agents.study import run_study
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.process import ProcessBackend

SETTINGS = {
    "vocab_size": 64, "seq_len": 64, "num_kv_pairs": 16, "d_model": 32, "steps": 400,
    "warmup_steps": 20, "test_examples": 256,
}  # fmt: skip


EVOLUTION = {"population": 16, "tournament": 4, "initial": 4, "guided": True, "classics": True}
ARMS = {  # name -> (proposer, the [evolution] section)
    "evolution": ("evolution", EVOLUTION),
    "evolution (random start)": ("evolution", {**EVOLUTION, "classics": False}),
    "evolution (random mutation)": ("evolution", {**EVOLUTION, "guided": False}),
    "random": ("random", EVOLUTION),
}


def study_config(arm: str, seed: int) -> StudyConfig:
    proposer, evolution = ARMS[arm]
    return StudyConfig.model_validate({
        "name": f"{arm}-{seed}", "task": "mqar", "budget": "100h", "proposer": proposer, "seed": seed,
        "baselines": ["linear_attention"], "settings": SETTINGS, "screen": {"settings": {}},
        "promotion": {"fraction": 1e-9, "min_screened": 10_000},  # screening only: equal cost per design
        "evolution": evolution,
        "limits": {"cpus": 1},  # the other arms' studies run beside it
    })  # fmt: skip


def run_one(arm: str, seed: int, experiments: int, root: Path) -> dict:
    folder = root / f"{list(ARMS).index(arm)}-{seed}"
    config = study_config(arm, seed)
    run_study(folder, config, ProcessBackend(), max_experiments=experiments, say=lambda line: None)
    study_id = json.loads((folder / "study.json").read_text())["study_id"]
    accuracies, fitnesses = [], []
    with KnowledgeBase(folder / "knowledge.db", starter=None) as kb:
        for architecture, run in kb.study_runs(study_id, "screen"):
            if architecture.origin != "baseline":
                succeeded = run.status == "succeeded"
                accuracies.append(run.result["value"] if succeeded else 0.0)
                fitnesses.append(run.fitness if succeeded and run.fitness is not None else 0.0)
    return {
        "fitness": best_so_far(fitnesses), "accuracy": best_so_far(accuracies),
        "device_time": device_time(folder),
    }  # fmt: skip


def best_so_far(values: list[float]) -> list[float]:
    best, curve = 0.0, []
    for value in values:
        best = max(best, value)
        curve.append(best)
    return curve


def experiments_to_reach(curve: list[float], target: float) -> int | None:
    return next((index + 1 for index, best in enumerate(curve) if best >= target), None)


def efficiency_table(results: dict[str, list[dict]], measure: str, marks: list[int]) -> str:
    """Median best `measure` after n experiments per arm, and how many experiments each evolution
    arm needed to reach random search's final best (the median over random's seeds)."""
    n = marks[-1]
    rows = []
    for arm, runs in results.items():
        cells = [f"{statistics.median(run[measure][m - 1] for run in runs):.3f}" for m in marks]
        rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    target = statistics.median(run[measure][-1] for run in results["random"])
    lines = []
    for arm in (arm for arm in results if arm != "random"):
        reach = [experiments_to_reach(run[measure], target) for run in results[arm]]
        median = statistics.median(r if r is not None else math.inf for r in reach)  # unreached: never
        median_text = f"{median:.0f}" if math.isfinite(median) else f"more than {n}"
        per_seed = ", ".join(str(r) if r is not None else "not reached" for r in reach)
        lines.append(f"- {arm}: {per_seed}; median {median_text} (target: <= {n // 2})")
    return (
        f"Median best {measure} after n experiments:\n\n"
        "| proposer | " + " | ".join(f"n={m}" for m in marks) + " |\n|---|" + "---|" * len(marks) + "\n"
        + "\n".join(rows) + "\n\n"
        f"Random search's final best {measure} (median over seeds): {target:.3f}. Experiments needed "
        "to reach it, per seed:\n\n" + "\n".join(lines)
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--experiments", type=int, default=12)
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args()
    if "random" not in args.arms:
        parser.error("--arms must include random: it is the control every evolution arm is measured against")
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS if arm in args.arms}
    pool = ProcessPoolExecutor(len(results))  # the arms of a seed side by side
    with tempfile.TemporaryDirectory(prefix="discover-search-") as root, pool:
        for seed in range(args.seeds):
            futures = {arm: pool.submit(run_one, arm, seed, args.experiments, Path(root)) for arm in results}
            for arm, future in futures.items():
                result = future.result()
                results[arm].append(result)
                print(arm, seed, [round(v, 3) for v in result["accuracy"]], flush=True)

    n = args.experiments
    marks = sorted({max(1, n // 4), n // 2, 3 * n // 4, n})
    split = DeviceTime()
    for runs in results.values():
        for run in runs:
            split.add(run["device_time"])
    checks = split.check_seconds
    fixed = statistics.median(split.outside["screen"]) + statistics.median(checks)
    body = (
        "## Search efficiency and loop overhead (`discover run`, offline proposers)\n\n"
        f"Machine: {machine()}. {args.seeds} seeds per arm, {n} experiments per study, process "
        f"sandbox; MQAR {SETTINGS}; screening only (no promotion), reference baseline linear_attention; "
        f"evolution {EVOLUTION} (classics: the grammar's classic designs come first). "
        "Fitness is what the proposers maximise (held-out accuracy against the reference, with "
        "throughput and memory); accuracy alone is shown beside it.\n\n"
        + efficiency_table(results, "fitness", marks) + "\n\n"
        + efficiency_table(results, "accuracy", marks) + "\n\n"
        f"Overhead: {split.charged:,.0f} device-seconds charged, {split.in_steps:,.0f} inside training "
        f"steps: {split.outside_share:.1%} outside them (target <= 3%).\n\n" + table(split) + "\n\n"
        "Every experiment pays a check job, and every training run three sandbox jobs (fit, predict, "
        "audit), each starting Python and torch: fixed costs, so the share falls below 3% once a run "
        f"trains for {fixed / 0.03:,.0f} s or more (benchmarks/study_overhead.py measures a real study)."
    )  # fmt: skip
    print(body)
    write_section("search", body)


if __name__ == "__main__":
    main()
