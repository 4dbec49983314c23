"""Search efficiency and loop overhead of `discover run`'s offline proposers.

Runs real studies (the study runner, knowledge base, ledger and process sandbox; grammar designs
are trusted code) with several proposers ("arms"), several seeds each, for the same number of
experiments: evolution (the default: guided mutation), its ablation with random mutation, and
random search (the control). The MQAR setting is one where designs spread out (vocab 64, length
64, 16 pairs, d_model 32, 400 steps): linear attention scores about 0.06, most random designs stay
near that, and a few reach 1.0. The studies of a seed run side by side, one core each where the
machine has enough (on two cores, more than two arms share them).

A fair comparison: every arm starts from the same designs (`--start`). With `classics` (the
default, as `discover init` configures evolution) every arm first screens the grammar's five
classic designs; with `random`, every arm first screens the same `initial` random designs of its
seed. The evolution arms and the control run the evolution proposer, the control with its
initial population made endless: the classics (if any), then uniform samples drawn exactly as
`proposer = "random"` draws them; the model-based arms (`surrogate`, and `tpe`: Optuna's
tree-structured Parzen estimator) draw the same first designs, then follow their model;
`surrogate (warm start)` also finds the control's studies of the other seeds in its knowledge
base, as a user's earlier studies of the task (it runs after them); `surrogate (naswot)` reads
each design's NASWOT score at initialisation too. Seed s
of every arm uses the same training seed and the same first designs, so arms are compared to the
control seed by seed (a paired t-interval, `discover.agents.statistics.compare`).

Reports

- search efficiency: the best fitness (what the proposers maximise) and the best held-out accuracy
  after n experiments, per arm; each arm minus the control, paired by seed, with a 95% interval:
  the final best, and the mean of the best-so-far curve (the area under it, so it rewards getting
  there sooner); the experiments each arm needs to reach the same seed's control's final best
  (target <= n/2), and the median over seeds of that minus the control's own, with a bootstrap
  interval;
- overhead: the share of charged device time spent outside training steps (sandbox start-up,
  probes, prediction and audit jobs, the study's own bookkeeping); target <= 3%.

Writes the `search` section of benchmarks/RESULTS.md (`search-random-start` with `--start random`;
`-<n>` added for studies of other than 12 experiments) when run with at least 10 seeds; fewer is a
smoke check, printed only. Every finished study is kept in `benchmarks/search.json` (by arm, seed
and its whole configuration), so a later call with more arms or seeds trains only what is new.

    python -m benchmarks.search [--seeds 10] [--experiments 12] [--start classics]
        [--arms evolution random]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.results import machine, write_section
from benchmarks.study_overhead import DeviceTime, device_time, table
from discover.agents.config import StudyConfig
from discover.agents.grammar import readable_name, render
from discover.agents.proposers.grammar_search import genome_by_code_hash
from discover.agents.statistics import compare, interval_level
from discover.agents.study import run_study
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.process import ProcessBackend

SETTINGS = {
    "vocab_size": 64, "seq_len": 64, "num_kv_pairs": 16, "d_model": 32, "steps": 400,
    "warmup_steps": 20, "test_examples": 256,
}  # fmt: skip

EVOLUTION = {"population": 16, "tournament": 4, "initial": 4, "guided": True}
ENDLESS = 10**9  # an initial population that never ends: evolution then only samples at random
ARMS = {  # name -> what it changes in the [evolution] section, or the proposer it runs instead
    "evolution": {},
    "evolution (random mutation)": {"guided": False},
    "surrogate": {"proposer": "surrogate"},
    "tpe": {"proposer": "tpe"},
    "random": {"initial": ENDLESS},
    # learns from the control's studies of the other seeds too, as a user's earlier studies
    "surrogate (warm start)": {"proposer": "surrogate", "warm_start": True},
    # cold, with each design's NASWOT score at initialisation as one more input (zero_cost.py)
    "surrogate (naswot)": {"proposer": "surrogate", "naswot": True},
}
CONTROL = "random"
PRIOR = CONTROL  # the arm whose other seeds' studies a warm-start arm finds in its knowledge base
CACHE = Path(__file__).parent / "search.json"  # finished studies, so arms and seeds accumulate
STARTS = {  # --start -> the [evolution] section's `classics`, and the RESULTS.md section written
    "classics": (True, "search"),
    "random": (False, "search-random-start"),
}
Prior = dict[int, list]  # seed -> that study's screens: [code hash, fitness, accuracy] per experiment
EXPERIMENTS = 12  # per study, unless --experiments says otherwise
MIN_SEEDS = 10  # fewer gives intervals too wide to say anything: a smoke check, not a result
BOOTSTRAP_DRAWS = 10_000
ALPHA = 0.025  # one-sided, so `compare`'s interval is the two-sided 95% one


def study_config(arm: str, seed: int, start: str) -> StudyConfig:
    changes = dict(ARMS[arm])
    proposer = changes.pop("proposer", "evolution")
    warm_start = changes.pop("warm_start", False)
    naswot = changes.pop("naswot", False)
    evolution = {**EVOLUTION, "classics": STARTS[start][0], **changes}
    # The model-based arms start as evolution does (the same classics or random designs), then model.
    model_based = {"initial": EVOLUTION["initial"], "classics": STARTS[start][0], "warm_start": warm_start}
    return StudyConfig.model_validate({
        "name": f"{arm}-{seed}", "task": "mqar", "budget": "100h", "proposer": proposer, "seed": seed,
        "baselines": ["linear_attention"], "settings": SETTINGS, "screen": {"settings": {}},
        "promotion": {"fraction": 1e-9, "min_screened": 10_000},  # screening only: equal cost per design
        "evolution": evolution, "surrogate": {**model_based, "naswot": naswot}, "tpe": model_based,
        "limits": {"cpus": 1},  # the other arms' studies run beside it
    })  # fmt: skip


def cache_key(arm: str, seed: int, experiments: int, start: str, prior: Prior) -> str:
    """A finished study is reused while everything that decides it is unchanged."""
    config = study_config(arm, seed, start).model_dump(mode="json")
    return json.dumps([arm, seed, experiments, config] + ([sorted(prior)] if prior else []))


def run_one(arm: str, seed: int, experiments: int, start: str, prior: Prior, root: Path) -> dict:
    folder = root / f"{list(ARMS).index(arm)}-{seed}"
    config = study_config(arm, seed, start)
    if prior:
        add_prior(folder, prior, start)
    run_study(folder, config, ProcessBackend(), max_experiments=experiments, say=lambda line: None)
    study_id = json.loads((folder / "study.json").read_text())["study_id"]
    accuracies, fitnesses, designs = [], [], []
    with KnowledgeBase(folder / "knowledge.db", starter=None) as kb:
        for architecture, run in kb.study_runs(study_id, "screen"):
            # one value per experiment: its design's screening run, not the too-good gate's recheck
            if architecture.origin != "baseline" and "recheck_of" not in run.result:
                succeeded = run.status == "succeeded"
                accuracies.append(run.result["value"] if succeeded else 0.0)
                fitnesses.append(run.fitness if succeeded and run.fitness is not None else 0.0)
                designs.append(architecture.code_hash)
    return {
        "fitness": best_so_far(fitnesses, experiments), "accuracy": best_so_far(accuracies, experiments),
        "device_time": asdict(device_time(folder)),
        # what each experiment screened and scored, in order: the prior of a later warm-start arm
        "screens": [list(screen) for screen in zip(designs, fitnesses, accuracies, strict=True)],
    }  # fmt: skip


def add_prior(folder: Path, prior: Prior, start: str) -> None:
    """Earlier studies' screens in the new study's knowledge base, as `discover import` brings them:
    one study per seed of the prior arm, with its configuration, each design with the fitness it
    screened at there."""
    folder.mkdir(parents=True)
    with KnowledgeBase(folder / "knowledge.db") as kb:
        for seed, screens in prior.items():
            study = kb.add_study(f"{PRIOR}-{seed}", study_config(PRIOR, seed, start).model_dump(mode="json"))
            for design, fitness, _ in screens:
                genome = genome_by_code_hash()[design]
                name, code = readable_name(genome), render(genome)
                architecture = kb.add_architecture(name, code, "grammar", study_id=study.id)
                kb.add_run(architecture.id, "mqar", fidelity="screen", status="succeeded", fitness=fitness,
                           study_id=study.id)  # fmt: skip


def priors(cache: dict, experiments: int, start: str, seeds: int) -> dict[int, Prior]:
    """Per seed, the prior arm's studies of every other seed whose screens are on record."""
    recorded = {}
    for seed in range(seeds):
        entry = cache.get(cache_key(PRIOR, seed, experiments, start, {}))
        if entry is not None and "screens" in entry:
            recorded[seed] = entry["screens"]
    return {seed: {s: v for s, v in recorded.items() if s != seed} for seed in range(seeds)}


def best_so_far(values: list[float], n: int) -> list[float]:
    """The best value after each of n experiments; a study that stopped early keeps its last best."""
    best, curve = 0.0, []
    for value in values:
        best = max(best, value)
        curve.append(best)
    return curve + [best] * (n - len(curve))


def experiments_to_reach(curve: list[float], target: float) -> int | None:
    return next((index + 1 for index, best in enumerate(curve) if best >= target), None)


def paired(arm: list[float], control: list[float]) -> str:
    """The arm minus the control, value s of each from seed s: mean [interval], one-sided p."""
    comparison = compare(arm, control, alpha=ALPHA)
    low, high = comparison.interval
    return f"{comparison.difference:+.3f} [{low:+.3f}, {high:+.3f}], p = {comparison.p_value:.3f}"


def reach_difference(reach: list[int | None], control_reach: list[int]) -> str:
    """The median over seeds of (experiments the arm needed - experiments the control needed) to
    reach the control's final best, with a 95% percentile bootstrap interval over seeds. A seed the
    arm never reached counts as never (infinitely many), not as n + 1, which would flatter it."""
    pairs = zip(reach, control_reach, strict=True)
    differences = np.array([math.inf if r is None else r - c for r, c in pairs])
    draws = np.random.default_rng(0).integers(0, len(differences), (BOOTSTRAP_DRAWS, len(differences)))
    medians = np.median(differences[draws], axis=1)
    # `lower`/`higher` pick observed medians, so an infinite one never meets another in arithmetic
    low, high = np.quantile(medians, 0.025, method="lower"), np.quantile(medians, 0.975, method="higher")

    def text(value: float) -> str:
        return f"{value:+.1f}" if math.isfinite(value) else "never"

    return f"{text(float(np.median(differences)))} [{text(low)}, {text(high)}]"


def efficiency_table(results: dict[str, list[dict]], measure: str, marks: list[int]) -> str:
    """Per arm: the median best `measure` after n experiments; the paired difference from the
    control in the final best and in the mean of the best-so-far curve; and the experiments needed
    to reach the same seed's control's final best."""
    n = marks[-1]
    medians = []
    for arm, runs in results.items():
        cells = [f"{statistics.median(run[measure][m - 1] for run in runs):.3f}" for m in marks]
        medians.append(f"| {arm} | " + " | ".join(cells) + " |")
    control = results[CONTROL]
    rows = []
    for arm, runs in results.items():
        if arm == CONTROL:
            final = area = "control"
        else:
            final = paired([r[measure][-1] for r in runs], [r[measure][-1] for r in control])
            area = paired(
                [statistics.mean(r[measure]) for r in runs], [statistics.mean(r[measure]) for r in control]
            )
        targets = [ref[measure][-1] for ref in control]  # the same seed's control's final best
        reach = [experiments_to_reach(r[measure], target) for r, target in zip(runs, targets, strict=True)]
        control_reach = [experiments_to_reach(r[measure], r[measure][-1]) or n for r in control]
        difference = "control" if arm == CONTROL else reach_difference(reach, control_reach)
        within = sum(r is not None and r <= n // 2 for r in reach)
        median = statistics.median(r if r is not None else math.inf for r in reach)  # unreached: never
        per_seed = ", ".join(str(r) if r is not None else "-" for r in reach)
        median_text = f"{median:.0f}" if math.isfinite(median) else f"> {n}"
        cells = [arm, final, area, per_seed, median_text, difference, f"{within}/{len(reach)}"]
        rows.append("| " + " | ".join(cells) + " |")
    return (
        f"Median best {measure} after n experiments:\n\n"
        "| arm | " + " | ".join(f"n={m}" for m in marks) + " |\n|---|" + "---|" * len(marks) + "\n"
        + "\n".join(medians) + "\n\n"
        f"Each arm minus {CONTROL}, paired by seed: mean difference [{interval_level(ALPHA):.0%} "
        f"interval], one-sided p that the arm is better; then the experiments the arm needed to "
        f"reach the same seed's {CONTROL} final best {measure} (per seed, '-' not within {n}), their "
        f"median (target: <= {n // 2}), the median over seeds of the arm's experiments minus "
        f"{CONTROL}'s own to get there [95% bootstrap interval over seeds; 'never' where seeds the arm "
        f"did not reach decide it], and the seeds that reached it within {n // 2}:\n\n"
        f"| arm | final best {measure} | mean best-so-far {measure} | experiments to reach, per seed "
        "| median | minus control's | within n/2 |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )  # fmt: skip


def warm_text(arms: list[str], prior: dict[int, Prior], n: int) -> str:
    if not any(is_warm(arm) for arm in arms):
        return ""
    studies = statistics.median(len(other) for other in prior.values())
    return (
        "surrogate (warm start) is surrogate with `warm_start` on, after the same start, its "
        f"knowledge base holding {PRIOR}'s studies of the other seeds (a median of {studies:.0f} "
        f"per seed, {n} screens each), as a user's earlier studies of the task would be: no "
        "study sees its own seed's. "
    )


def is_warm(arm: str) -> bool:
    return bool(ARMS[arm].get("warm_start"))


def prior_of(arm: str, seed: int, prior: dict[int, Prior]) -> Prior:
    """The earlier studies in the knowledge base of `arm`'s study of `seed`: none unless warm."""
    return prior[seed] if is_warm(arm) else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=MIN_SEEDS)
    parser.add_argument("--experiments", type=int, default=EXPERIMENTS)
    parser.add_argument("--start", choices=list(STARTS), default="classics", help="every arm's first designs")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args()
    if CONTROL not in args.arms:
        parser.error(f"--arms must include {CONTROL}: it is the control every other arm is measured against")
    if args.seeds < 2:
        parser.error("--seeds must be at least 2: the comparisons pair seeds")
    arms = [arm for arm in ARMS if arm in args.arms]
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    study = (args.experiments, args.start)
    began = time.monotonic()
    # The warm-start arms run last: their prior is the prior arm's studies, finished first.
    cold, warm = [a for a in arms if not is_warm(a)], [a for a in arms if is_warm(a)]
    with tempfile.TemporaryDirectory(prefix="discover-search-") as root:
        for phase in (cold, warm):
            prior = priors(cache, *study, args.seeds)
            work = [(arm, seed, prior_of(arm, seed, prior)) for seed in range(args.seeds) for arm in phase]
            work = [(arm, seed, p) for arm, seed, p in work if cache_key(arm, seed, *study, p) not in cache]
            # every study not on record side by side, at least one per core (each is limited to one)
            with ProcessPoolExecutor(max(len(arms), os.cpu_count() or 1)) as pool:
                futures = [
                    (arm, seed, p, pool.submit(run_one, arm, seed, *study, p, Path(root)))
                    for arm, seed, p in work
                ]
                for arm, seed, p, future in futures:
                    cache[cache_key(arm, seed, *study, p)] = future.result()
                    CACHE.write_text(json.dumps(cache))
                    print(f"{arm} {seed} done, {time.monotonic() - began:,.0f} s so far", flush=True)
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    prior = priors(cache, *study, args.seeds)
    for arm in arms:
        for seed in range(args.seeds):
            results[arm].append(cache[cache_key(arm, seed, *study, prior_of(arm, seed, prior))])

    n = args.experiments
    marks = sorted({max(1, n // 4), n // 2, 3 * n // 4, n})
    split = DeviceTime()
    for runs in results.values():
        for run in runs:
            split.add(DeviceTime(**run["device_time"]))
    checks = split.check_seconds
    fixed = statistics.median(split.outside["screen"]) + statistics.median(checks)
    classics, section = STARTS[args.start]
    section += "" if n == EXPERIMENTS else f"-{n}"
    common = (
        "the grammar's five classic designs (linear attention, retention, GLA, DeltaNet, Gated DeltaNet)"
        if classics
        else f"the same {EVOLUTION['initial']} random designs per seed"
    )
    body = (
        "## Search efficiency and loop overhead (`discover run`, offline proposers)\n\n"
        f"Machine: {machine()}. {args.seeds} seeds per arm, {n} experiments per study, process "
        f"sandbox; MQAR {SETTINGS}; screening only (no promotion), reference baseline linear_attention. "
        f"Every arm starts from {common}, and seed s of every arm trains with seed s (each study "
        "draws its own secret held-out set, so one design scores a little differently in each). A "
        "design far ahead of the reference is screened again (the too-good recheck): that run is "
        f"charged but is not an experiment of the curves. Arms run here: {', '.join(results)}. The "
        f"evolution arms and random are the evolution proposer, {EVOLUTION}: evolution as configured, "
        "evolution (random mutation) with `guided = false`, and random with an initial population "
        "that never ends (after the common start, uniform samples of the grammar, drawn as "
        "`proposer = \"random\"` draws them); surrogate is the tree-ensemble proposer (100 trees, "
        "exploration 1) and tpe Optuna's tree-structured Parzen estimator (24 candidates), both "
        "without warm start, after the same start; surrogate (naswot) is surrogate with each design's "
        "NASWOT score at initialisation as one more input (`benchmarks/zero_cost.py`), cold. "
        + warm_text(arms, prior, n) +
        "Fitness is what the proposers maximise (held-out accuracy against the reference, with "
        "throughput and memory); accuracy alone is shown beside it. Differences from random are "
        "paired by seed: a paired t-interval (`discover.agents.statistics.compare`), one per "
        "comparison, not adjusted for the several made. The mean best-so-far is the area under the "
        "best-so-far curve over n: unlike the experiments needed to reach a target, it is defined "
        "for every seed, so it can be paired and averaged, and it rewards reaching a high fitness "
        "sooner.\n\n"
        + efficiency_table(results, "fitness", marks) + "\n\n"
        + efficiency_table(results, "accuracy", marks) + "\n\n"
        f"Overhead: {split.charged:,.0f} device-seconds charged, {split.in_steps:,.0f} inside training "
        f"steps: {split.outside_share:.1%} outside them (target <= 3%).\n\n" + table(split) + "\n\n"
        "Every experiment pays a check job, and every training run three sandbox jobs (fit, predict, "
        "audit), each starting Python and torch: fixed costs, so the share falls below 3% once a run "
        f"trains for {fixed / 0.03:,.0f} s or more (benchmarks/study_overhead.py measures a real study)."
    )  # fmt: skip
    print(body)
    if args.seeds < MIN_SEEDS:
        print(f"\nNot written to RESULTS.md: {args.seeds} seeds are a smoke check, {MIN_SEEDS} a result.")
    else:
        write_section(section, body)


if __name__ == "__main__":
    main()
