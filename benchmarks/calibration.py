"""Is the test that decides every claim calibrated? (`discover.agents.statistics.compare`)

(a) By simulation: candidate and reference drawn from one distribution (A/A), Gaussian and
    heavy-tailed (Student-t, 2 degrees of freedom) noise, n = 3, 5 and 8 seeds, `--trials` each: how
    often the test claims a win (its false-positive rate; target <= alpha within Monte Carlo
    error). And its power: how often it claims a real effect of 0.5, 1 and 2 noise standard
    deviations.
(b) For real (`--real N`): the baseline linear attention on `--task` (small settings), trained in
    the process sandbox on fresh seeds, verified against itself trained on other fresh seeds, N
    times: how many claimed a win.

Writes the `calibration` section of benchmarks/RESULTS.md.

    python -m benchmarks.calibration [--trials 10000] [--real 20] [--task mqar] [--seeds 5] [--steps 100]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.results import machine, write_section
from discover.agents.statistics import ALPHA, compare

Noise = Callable[[np.random.Generator, int], np.ndarray]
NOISES: dict[str, Noise] = {
    "Gaussian": lambda rng, n: rng.normal(size=n),
    "Student-t(2)": lambda rng, n: rng.standard_t(2, size=n) / math.sqrt(3.0),  # heavy tails
}
SEEDS = (3, 5, 8)
EFFECTS = (0.5, 1.0, 2.0)  # in noise standard deviations of one run
SMALL_SETTINGS = {  # a few seconds a run on a CPU
    "mqar": {"test_examples": 256},
    "lm": {"seq_len": 64, "eval_windows": 32, "warmup_steps": 10},
}


def claim_rate(noise: Noise, n: int, effect: float, trials: int, rng: np.random.Generator) -> float:
    """Share of trials in which a candidate `effect` better than the reference is claimed; per-seed
    noise of the two runs on one seed is independent (no shared seed effect: the hardest case)."""
    wins = sum(compare(noise(rng, n) + effect, noise(rng, n)).beats for _ in range(trials))
    return wins / trials


def simulated(trials: int) -> list[str]:
    rng = np.random.default_rng(0)
    error = 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)
    lines = [
        f"(a) Simulation, {trials:,} trials a cell; alpha = {ALPHA} one-sided; target: false-positive "
        f"rate <= {ALPHA} + {error:.4f} (three Monte Carlo standard errors).",
        "",
        "| noise | seeds | false-positive rate | meets target | power at 0.5 sd | at 1 sd | at 2 sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, noise in NOISES.items():
        for n in SEEDS:
            rate = claim_rate(noise, n, 0.0, trials, rng)
            power = [claim_rate(noise, n, effect, max(trials // 5, 1000), rng) for effect in EFFECTS]
            verdict = "yes" if rate <= ALPHA + error else "no"
            lines.append(
                f"| {name} | {n} | {rate:.4f} | {verdict} | " + " | ".join(f"{p:.2f}" for p in power) + " |"
            )
    return lines


def real(task: str, verifications: int, seeds: int, steps: int) -> list[str]:
    """Linear attention against itself on fresh seeds, `verifications` times, in the sandbox."""
    from discover.experiments.baselines import builtin_baselines
    from discover.experiments.runspec import RunSpec
    from discover.experiments.tasks import get_task
    from discover.sandbox.backends import BackendOptions, make_backend
    from discover.sandbox.base import Limits
    from discover.sandbox.runner import Sandbox
    from discover.vetting.candidate import vet

    candidate = vet(builtin_baselines()["linear_attention"])
    settings = {**SMALL_SETTINGS[task], "steps": steps, "log_every": steps}
    sign = 1.0 if get_task(task).higher_is_better else -1.0  # oriented: larger is better
    claims, differences = 0, []
    with tempfile.TemporaryDirectory(prefix="discover-calibration-") as scratch:
        sandbox = Sandbox(make_backend("process", BackendOptions()), Path(scratch), Limits(timeout_s=600))

        def metric(seed: int) -> float:
            return sign * sandbox.train(candidate, RunSpec.resolve(task, settings, seed)).value

        for index in range(verifications):
            first = 1000 + index * 2 * seeds
            design = [metric(seed) for seed in range(first, first + seeds)]
            reference = [metric(seed) for seed in range(first + seeds, first + 2 * seeds)]
            result = compare(design, reference)
            claims += result.beats
            differences.append(result.difference)
            print(f"A/A {index + 1}/{verifications}: p = {result.p_value:.3f}, claimed: {result.beats}")
    return [
        "",
        f"(b) Real A/A: linear attention on {task} ({steps} steps, {settings}, process sandbox) verified "
        f"against itself on fresh seeds, {seeds} seeds a side, {verifications} times: "
        f"{claims} claimed a win ({claims / verifications:.0%}; expected about {ALPHA:.0%}, "
        f"{ALPHA * verifications:.1f} of {verifications}). Mean difference "
        f"{np.mean(differences):+.4f} (spread {np.std(differences):.4f}), in the metric oriented so "
        "that larger is better.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--real", type=int, default=0, help="real A/A verifications (0: none)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--task", default="mqar", choices=sorted(SMALL_SETTINGS))
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    lines = ["## Calibration of the claim test", "", f"Machine: {machine()}.", "", *simulated(args.trials)]
    if args.real:
        lines += real(args.task, args.real, args.seeds, args.steps)
    body = "\n".join(lines)
    write_section("calibration", body)
    print(body)


if __name__ == "__main__":
    main()
