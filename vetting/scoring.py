"""Fitness of a result relative to a reference baseline's result on the same task.

    fitness = weighted mean of
        quality    = sigmoid(log quality ratio / quality_scale), averaged with weight
                     zero_shot_weight with the same term for zero-shot benchmark accuracy (lm)
        efficiency = mean of sigmoid(log2 throughput ratio) and sigmoid(log2 memory ratio);
                     the throughput term is 0.5 when the two were timed by different clocks
        judge      = a qualitative score in [0, 1] from an LLM judge, when one is given

On a suite of tasks, quality and efficiency are each the mean over the tasks of the term on that
task, against the reference's result on it: a gain on one task shows, whatever the metric's spread.

The log quality ratio is log(reference's error / result's error), where error is the distance from
the task's optimum (bits per byte itself; 1 - accuracy), so quality keeps resolving designs far
better than a weak reference, where a clipped relative improvement scored them all 1.0. For a
metric bounded on both sides (accuracy, between 0 and 1) it is the log-odds ratio instead: the
error term plus log(result's distance from the worst value / reference's). That also resolves
designs near chance, where "learns a little" must outrank "runs faster at chance" (with the error
term alone, 11% against a 6% reference was worth less than half the throughput). Against a
reference at 6% accuracy, designs at 11%, 40%, 85% and 99% score 0.58, 0.76, 0.90 and 0.97 with
mqar's scale. Each term is 0.5 at parity with the reference. Weights are `ScoringConfig` fields;
the scale is the task's unless the config sets one. A result that improves on the reference by
more than `too_good_margin` is flagged for verification (more seeds, longer run) instead of being
crowned.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from discover.experiments.harness import TrainResult
from discover.experiments.suite import Suite, SuiteResult
from discover.experiments.tasks import get_task
from discover.experiments.tasks.base import Task

ZERO_SHOT = "zero_shot_acc_norm"
ZERO_SHOT_SCALE = 2.0  # as the accuracy tasks' quality_scale: log-odds ratio 2 lifts the term to 0.73


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quality_weight: float = 0.8
    efficiency_weight: float = 0.1
    judge_weight: float = 0.1  # ignored (weights renormalised) when no judge score is given
    quality_scale: float | None = Field(default=None, gt=0)  # None: the task's own (`Task.quality_scale`)
    error_floor: float = Field(default=1e-3, gt=0)  # 99.9% accuracy counts as perfect: ties, not a cliff
    too_good_margin: float = 0.5  # beyond +50% relative improvement: verify before believing
    # Weight of zero-shot benchmark accuracy (the lm task's `zero_shot` files) beside the task
    # metric in quality: 0 leaves it recorded but out of fitness; 1 counts it as much as the metric.
    zero_shot_weight: float = Field(default=0.0, ge=0)


class Fitness(BaseModel):
    value: float  # in [0, 1]; 0 for a run that diverged
    quality: float
    efficiency: float
    judge: float | None
    relative_improvement: float  # > 0 means better than the reference on the task metric
    needs_verification: bool


def relative_improvement(value: float, reference: float, task: Task | Suite) -> float:
    """How much better `value` is than `reference`, relative to it: > 0 when the task calls it better."""
    distance = abs(value - reference)
    gain = -distance if task.better(reference, value) else distance
    return gain / max(abs(reference), 1e-9)


def log_quality_ratio(
    value: float, reference: float, optimum: float, worst: float | None, floor: float
) -> float:
    """log(reference's error / value's), where error is the distance from the optimum, plus, for a
    metric with a worst value, log(value's distance from the worst / reference's): > 0 means better
    than the reference. Distances below `floor` count as `floor`: a perfect reference would
    otherwise send every near-perfect design to quality 0, below far worse ones that only run faster."""

    def error(x: float) -> float:
        return max(abs(optimum - x), floor)

    ratio = math.log(error(reference) / error(value))
    if worst is not None:
        span = abs(optimum - worst)
        ratio += math.log(max(span - error(value), floor) / max(span - error(reference), floor))
    return ratio


def fitness(
    result: TrainResult,
    reference: TrainResult,
    task: Task | Suite,
    cfg: ScoringConfig | None = None,
    judge_score: float | None = None,
) -> Fitness:
    """`result`'s fitness against `reference`'s on `task`; on a suite of several tasks, the mean
    of each term over the tasks, every task scored against the reference's result on it."""
    cfg = cfg or ScoringConfig()
    improvement = relative_improvement(result.value, reference.value, task)
    if result.status != "ok" or not math.isfinite(improvement):
        return Fitness(
            value=0.0, quality=0.0, efficiency=0.0, judge=judge_score,
            relative_improvement=-1.0, needs_verification=False,
        )  # fmt: skip
    if isinstance(result, SuiteResult) and isinstance(reference, SuiteResult):
        terms = [
            _terms(part, reference.parts[name], get_task(name), cfg) for name, part in result.parts.items()
        ]
        quality = sum(term[0] for term in terms) / len(terms)
        efficiency = sum(term[1] for term in terms) / len(terms)
    else:
        quality, efficiency = _terms(result, reference, task, cfg)

    weighted = [(cfg.quality_weight, quality), (cfg.efficiency_weight, efficiency)]
    if judge_score is not None:
        weighted.append((cfg.judge_weight, judge_score))
    total_weight = sum(weight for weight, _ in weighted)
    value = sum(weight * term for weight, term in weighted) / total_weight
    return Fitness(
        value=value,
        quality=quality,
        efficiency=efficiency,
        judge=judge_score,
        relative_improvement=improvement,
        needs_verification=improvement > cfg.too_good_margin,
    )


def _terms(
    result: TrainResult, reference: TrainResult, task: Task | Suite, cfg: ScoringConfig
) -> tuple[float, float]:
    """Quality and efficiency of `result` against `reference` on one task."""
    if result.status != "ok" or not math.isfinite(result.value):
        return 0.0, 0.0
    scale = cfg.quality_scale or task.quality_scale
    ratio = log_quality_ratio(
        result.value, reference.value, task.metric_optimum, task.metric_worst, cfg.error_floor
    )
    quality = _sigmoid(ratio / scale)
    if cfg.zero_shot_weight > 0 and ZERO_SHOT in result.metrics and ZERO_SHOT in reference.metrics:
        # Benchmark accuracy joins quality: the same log-odds ratio, at the accuracy tasks' scale.
        odds = log_quality_ratio(
            result.metrics[ZERO_SHOT], reference.metrics[ZERO_SHOT], 1.0, 0.0, cfg.error_floor
        )
        quality = (quality + cfg.zero_shot_weight * _sigmoid(odds / ZERO_SHOT_SCALE)) / (
            1 + cfg.zero_shot_weight
        )
    # Throughputs by different clocks do not compare (tokens per CPU-second against per wall-second:
    # a reference measured before the CPU clock was, in a resumed study), so neither side gains.
    same_clock = result.throughput_clock == reference.throughput_clock
    throughput = _sigmoid(math.log2(result.tokens_per_s / reference.tokens_per_s)) if same_clock else 0.5
    memory = _sigmoid(math.log2(reference.peak_memory_mb / max(result.peak_memory_mb, 1e-9)))
    return quality, (throughput + memory) / 2


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
