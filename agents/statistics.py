"""The statistics behind every claim a study makes: bootstrap intervals and rank correlation
(scipy's implementations; this module only fixes how discover calls them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

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


def difference_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(a) - mean(b), resampling each group independently;
    None with fewer than MIN_SAMPLES values in either group or no spread at all."""
    xs, ys = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(xs) < MIN_SAMPLES or len(ys) < MIN_SAMPLES or (np.ptp(xs) == 0 and np.ptp(ys) == 0):
        return None

    def difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    from scipy import stats

    result = stats.bootstrap(
        (xs, ys), difference, confidence_level=confidence, n_resamples=RESAMPLES,
        method="percentile", random_state=seed, vectorized=True,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho; None with fewer than three pairs or no variation."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy import stats

    rho = stats.spearmanr(x, y).statistic
    return float(rho) if math.isfinite(rho) else None
