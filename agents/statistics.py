"""The statistics behind every claim a study makes: the one test that decides whether a design
beats a baseline (`compare`), false-discovery control across a study (`q_values`), descriptive
intervals and rank correlation (scipy's implementations; this module only fixes how discover
calls them).

Why a paired one-sided t-test. A verification trains the design and the reference on the same
seeds (same initialisation seed, same data order, same held-out set), so per-seed differences
remove the seed-to-seed variation the two share. Under the null (the design is no better), the
difference of two runs on one seed is symmetric about zero, and for symmetric noise the t-test's
false-positive rate stays at or below alpha even with heavy tails and n = 3
(benchmarks/calibration.py measures it: Gaussian and Student-t(2) noise, n = 3, 5, 8). The
exact sign-flip permutation test is the other candidate, but with n seeds its smallest p-value is
2^-n: at n = 5 it can only reject when every seed agrees, and at n = 3 never at alpha = 0.05. The
percentile bootstrap it replaces declared a winner 9-10% of the time at n = 3 in A/A simulations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05  # one-sided: the chance of calling a design better when it is not
RESAMPLES = 2000
MIN_SAMPLES = 3  # a percentile bootstrap of fewer values only echoes them back


def mean_interval(
    values: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean; None with fewer than MIN_SAMPLES values or when
    every value is the same."""
    data = np.asarray(values, dtype=float)
    if len(data) < MIN_SAMPLES or np.ptp(data) == 0:
        return None
    from scipy import stats  # half a second to import: only when a statistic is computed

    result = stats.bootstrap(
        (data,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES,
        method="percentile", random_state=seed,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho; None with fewer than three pairs or no variation."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy import stats

    rho = stats.spearmanr(x, y).statistic
    return float(rho) if math.isfinite(rho) else None


@dataclass(frozen=True)
class Comparison:
    """The outcome of `compare`: the mean per-seed difference (candidate minus reference, larger is
    better), its interval at 1 - 2 alpha (whose lower end is the one-sided 1 - alpha bound, so
    `beats` holds exactly when it lies above zero), the one-sided p-value, and the seeds compared."""

    difference: float
    interval: tuple[float, float]
    p_value: float
    beats: bool
    n: int
    alpha: float


def interval_level(alpha: float) -> float:
    """The two-sided level of `compare`'s interval: its lower end is the one-sided 1 - alpha bound."""
    return 1 - 2 * alpha


def compare(
    candidate: Sequence[float], reference: Sequence[float], *, paired: bool = True, alpha: float = ALPHA
) -> Comparison:
    """Whether the candidate is better than the reference: a one-sided t-test of per-seed values
    oriented so that larger is better. `paired`: value i of each was trained on the same seed (the
    paired t-test on the differences); otherwise Welch's test. ValueError with fewer than 2 values
    a side, unequal lengths when paired, or a value that is not finite."""
    xs, ys = np.asarray(candidate, dtype=float), np.asarray(reference, dtype=float)
    if len(xs) < 2 or len(ys) < 2:
        raise ValueError(f"a comparison needs at least 2 values a side, got {len(xs)} and {len(ys)}")
    if paired and len(xs) != len(ys):
        raise ValueError(f"paired values must come in pairs, got {len(xs)} and {len(ys)}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("every value compared must be a finite number")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be between 0 and 0.5, got {alpha}")
    from scipy import stats

    difference = float(xs.mean() - ys.mean())
    if paired:
        deltas = xs - ys
        spread, df = float(deltas.std(ddof=1)) / math.sqrt(len(deltas)), len(deltas) - 1
    else:
        vx, vy = xs.var(ddof=1) / len(xs), ys.var(ddof=1) / len(ys)
        spread = math.sqrt(vx + vy)
        df = (vx + vy) ** 2 / (vx**2 / (len(xs) - 1) + vy**2 / (len(ys) - 1)) if spread > 0 else 1
    if spread == 0:  # every seed gave the same difference: as sure as the data can make it
        p_value = 0.0 if difference > 0 else 1.0 if difference < 0 else 0.5
        interval = (difference, difference)
    else:
        p_value = float(stats.t.sf(difference / spread, df))
        margin = float(stats.t.ppf(1 - alpha, df)) * spread
        interval = (difference - margin, difference + margin)
    return Comparison(difference, interval, p_value, p_value <= alpha and difference > 0, len(xs), alpha)


def q_values(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the order given: a claim holds at false-discovery
    rate alpha when its q-value is at most alpha. Recomputed over every verification of a study as
    they accumulate, so a q-value may change as more designs are tested."""
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda index: p_values[index])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):  # from the largest p-value down, keeping the minimum seen
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = running
    return adjusted
