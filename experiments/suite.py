"""Suites: a design screened and verified on several tasks at once, as the MAD suite does.

A study's objective is always a `Suite`; a study on one task has a suite of one, whose results are
that task's own. Each task of a suite is trained as its own sandboxed job (workers run them in
parallel, the budget is charged per job), and the design's result is a `SuiteResult`: every task's
result, plus the mean of the tasks' headline metric as the suite's value (the number a paired
verification compares). Fitness is the mean of the per-task qualities against the reference
baseline on each task (`discover.vetting.scoring`). The tasks of a suite must share their metric's
direction and bounds (all the synthetic tasks score accuracy), so that the mean means something.

    spec = SuiteSpec.resolve("suite", settings={"steps": 300}, seed=0)
    for part in spec.parts: ...     # a RunSpec per task
    result = spec.combine({"mqar": mqar_result, ...})

Settings apply to every task when they are plain keys, and to one task under its name:
`{"steps": 300, "mqar": {"num_kv_pairs": 16}}`. Each task's `screen_settings` (its own cheap run)
apply at screening under the study's `[screen] settings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from discover.experiments.harness import TrainResult
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import SUITES, TASKS, Task, TaskConfigError, get_task


class Suite:
    """What a study scores designs on: its tasks, and the mean of their headline metric."""

    def __init__(self, name: str, tasks: tuple[Task, ...]) -> None:
        first = tasks[0]
        for task in tasks[1:]:
            if (task.higher_is_better, task.metric_optimum, task.metric_worst) != (
                first.higher_is_better, first.metric_optimum, first.metric_worst,
            ):  # fmt: skip
                raise TaskConfigError(
                    f"suite {name}: {task.name}'s {task.metric} and {first.name}'s {first.metric} "
                    "do not average (different direction or bounds)"
                )
        self.name = name
        self.tasks = tasks
        self.single = len(tasks) == 1
        self.metric = first.metric if self.single else f"mean {first.metric}"
        self.higher_is_better = first.higher_is_better
        self.metric_optimum = first.metric_optimum
        self.metric_worst = first.metric_worst
        self.quality_scale = first.quality_scale
        self.reference_baselines = first.reference_baselines
        self.description = first.description if self.single else self._describe()

    def _describe(self) -> str:
        lines = [f"A suite of {len(self.tasks)} tasks; a design is scored by its mean quality over them."]
        lines += [f"- {task.name}: {task.description}" for task in self.tasks]
        return "\n".join(lines)

    def better(self, a: float, b: float) -> bool:
        return self.tasks[0].better(a, b)

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]


def resolve_suite(name: str, suites: dict[str, list[str]] | None = None) -> Suite:
    """The suite called `name`: a suite of the configuration's (`suites`), a built-in one, or the
    one task of that name. Raises TaskConfigError (one line) for an unknown name."""
    members = (suites or {}).get(name) or SUITES.get(name)
    if members is None:
        if name not in TASKS:
            known = sorted({*TASKS.names(), *SUITES, *(suites or {})})
            raise TaskConfigError(f"unknown task or suite {name!r}; known: {', '.join(known)}")
        members = (name,)
    if not members:
        raise TaskConfigError(f"suite {name} has no tasks")
    return Suite(name, tuple(get_task(member) for member in members))


def layered(settings: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `settings`, a task's table merged key by key rather than replaced."""
    merged = dict(settings)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merged[key] | value if both else value
    return merged


class SuiteResult(TrainResult):
    """A design's results on every task of a suite. `value` is the mean of the tasks' values;
    `metrics` holds every task's metrics as "task.metric"."""

    parts: dict[str, TrainResult]


def result_from(data: dict[str, Any]) -> TrainResult:
    """A stored result as the class it was written as."""
    return SuiteResult.model_validate(data) if "parts" in data else TrainResult.model_validate(data)


@dataclass(frozen=True)
class SuiteSpec:
    """A study's run at one fidelity: a `RunSpec` per task of its suite, resolved once."""

    suite: Suite
    parts: tuple[RunSpec, ...]
    seed: int = 0

    @classmethod
    def resolve(
        cls,
        suite: Suite,
        settings: dict[str, Any] | None = None,
        seed: int = 0,
        screen: dict[str, Any] | None = None,
    ) -> SuiteSpec:
        """Each task's run: `settings` (plain keys for every task, a task's name for its own), and at
        screening (`screen` given, even empty) the task's own screening settings under `screen`."""
        settings, names = dict(settings or {}), set(suite.task_names)
        for key, value in (settings | (screen or {})).items():
            if key in TASKS and key not in names:
                raise TaskConfigError(f"settings for {key}, which is not a task of {suite.name}")
            if key in names and not isinstance(value, dict):
                raise TaskConfigError(f"settings.{key} must be a table of {key}'s settings")
        parts = []
        for task in suite.tasks:
            own = {key: value for key, value in settings.items() if key not in TASKS}
            own |= settings.get(task.name, {})
            if screen is not None:
                screen_own = {key: value for key, value in screen.items() if key not in TASKS}
                own |= task.screen_settings | screen_own | screen.get(task.name, {})
            parts.append(RunSpec.resolve(task, own, seed))
        return cls(suite, tuple(parts), seed)

    def with_seed(self, seed: int) -> SuiteSpec:
        return replace(self, parts=tuple(part.with_seed(seed) for part in self.parts), seed=seed)

    @property
    def steps(self) -> int:
        return sum(part.steps for part in self.parts)

    def combine(self, results: dict[str, TrainResult]) -> TrainResult:
        """One result from every task's: the task's own for a suite of one."""
        if self.suite.single:
            return results[self.suite.tasks[0].name]
        parts = {task.name: results[task.name] for task in self.suite.tasks}
        ordered = list(parts.values())
        first = ordered[0]
        seconds = sum(result.wall_time_s for result in ordered)
        # The tasks' throughputs weighted by the time each took (scoring compares them task by task).
        tokens = sum(result.tokens_per_s * result.wall_time_s for result in ordered)
        healthy = all(result.status == "ok" and math.isfinite(result.value) for result in ordered)
        metrics = {
            f"{name}.{key}": value for name, part in parts.items() for key, value in part.metrics.items()
        }
        return SuiteResult(
            candidate=first.candidate, code_hash=first.code_hash, task=self.suite.name, seed=first.seed,
            status="ok" if healthy else "diverged",
            final_train_loss=sum(result.final_train_loss for result in ordered) / len(ordered),
            params=max(result.params for result in ordered),
            flops_per_token=sum(result.flops_per_token for result in ordered) / len(ordered),
            tokens_per_s=tokens / seconds if seconds > 0 else first.tokens_per_s,
            throughput_clock=first.throughput_clock,
            peak_memory_mb=max(result.peak_memory_mb for result in ordered),
            wall_time_s=seconds, steps=sum(result.steps for result in ordered), device=first.device,
            data_version=";".join(result.data_version for result in ordered),
            config={name: result.config for name, result in parts.items()},
            versions=first.versions, metric=self.suite.metric,
            value=sum(result.value for result in ordered) / len(ordered), metrics=metrics, parts=parts,
        )  # fmt: skip
