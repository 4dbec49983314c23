"""Cost estimates: what a job is expected to cost before it runs, learned from what jobs of the
same kind cost, so that the ledger reserves about the right amount."""

from __future__ import annotations

import math
from collections.abc import Iterable


class CostEstimator:
    """Expected device-seconds of a job: the running mean of measured costs of jobs with the same
    key (e.g. "mqar/train"); before any was measured, jobs of the same task at another fidelity
    scaled by their steps (`steps` gives each key's training steps); else the default. Times a
    safety margin, so that estimates err towards reserving too much."""

    def __init__(self, default_seconds: float, margin: float = 1.2, steps: dict[str, int] | None = None):
        if not (math.isfinite(default_seconds) and default_seconds > 0):
            raise ValueError(f"default cost must be a positive number of seconds, got {default_seconds}")
        if not (math.isfinite(margin) and margin > 0):
            raise ValueError(f"safety margin must be a positive number, got {margin}")
        self.default_seconds = default_seconds
        self.margin = margin
        self.steps = dict(steps or {})
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def observe(self, key: str, device_seconds: float) -> None:
        if not (math.isfinite(device_seconds) and device_seconds >= 0):
            raise ValueError(f"measured cost must be a number of seconds >= 0, got {device_seconds}")
        self._sums[key] = self._sums.get(key, 0.0) + device_seconds
        self._counts[key] = self._counts.get(key, 0) + 1

    def observe_all(self, costs: Iterable[tuple[str, float]]) -> None:
        """Learn from (key, measured seconds) pairs, e.g. `Ledger.costs()` when a study resumes."""
        for key, seconds in costs:
            self.observe(key, seconds)

    def mean(self, key: str) -> float | None:
        count = self._counts.get(key, 0)
        return self._sums[key] / count if count else None

    def scaled(self, key: str) -> float | None:
        """A key's cost from measured keys of the same task, in proportion to training steps (start-up
        included, so it errs high for longer runs); the largest such, None when there is none."""
        task, steps = key.partition("/")[0], self.steps.get(key, 0)
        rates = [
            mean / self.steps[other]
            for other in self._counts
            if other.partition("/")[0] == task and self.steps.get(other, 0) > 0
            and (mean := self.mean(other)) is not None
        ]  # fmt: skip
        return max(rates) * steps if rates and steps > 0 else None

    def estimate(self, key: str, default: float | None = None) -> float:
        """`default` overrides the constructor's default for this key's first jobs."""
        mean = self.mean(key)
        if mean is None:
            mean = self.scaled(key)
        if mean is None:
            mean = self.default_seconds if default is None else default
        return mean * self.margin
