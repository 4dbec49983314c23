"""The task registry: each task owns its data, backbone, recipe, metric and reference baselines.

A new task is one file in this folder (a `Task` subclass) and one `TASKS.register` line below.
Jobs look their task up here by name inside the sandbox too, so a task must live in this package.
Listing the names imports nothing heavy (help texts); torch comes with the first `get_task`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from discover.experiments.registry import Registry, UnknownEntry

if TYPE_CHECKING:
    from discover.experiments.tasks.base import Batch, Task, TaskConfig, TaskConfigError

TASKS: Registry[type[Task]] = Registry("task")
TASKS.register("mqar", "discover.experiments.tasks.mqar:MQARTask", "associative recall")
TASKS.register("lm", "discover.experiments.tasks.lm:LMTask", "byte-level language modelling")
TASKS.register(
    "noisy_recall", "discover.experiments.tasks.noisy_recall:NoisyRecallTask", "recall among noise"
)
TASKS.register(
    "fuzzy_recall", "discover.experiments.tasks.fuzzy_recall:FuzzyRecallTask", "multi-token recall"
)
TASKS.register(
    "selective_copy", "discover.experiments.tasks.selective_copy:SelectiveCopyTask", "copying among blanks"
)
TASKS.register(
    "compression", "discover.experiments.tasks.compression:CompressionTask", "a sequence in one state"
)
TASKS.register(
    "memorization", "discover.experiments.tasks.memorization:MemorizationTask", "a fact table in the weights"
)
DEFAULT_TASK = "mqar"

# Suites a study can screen on (`discover.experiments.suite`): name -> tasks. A study's configuration
# may add its own under [suites].
SUITES: dict[str, tuple[str, ...]] = {
    "suite": ("mqar", "noisy_recall", "fuzzy_recall", "selective_copy", "compression", "memorization"),
    "recall": ("mqar", "noisy_recall", "fuzzy_recall"),
}


@cache
def get_task(name: str) -> Task:
    """The task named `name` (one instance per process; tasks hold no per-run state)."""
    from discover.experiments.tasks.base import TaskConfigError

    try:
        return TASKS.get(name)()
    except UnknownEntry as exc:
        if name in SUITES:
            tasks = ", ".join(SUITES[name])
            raise TaskConfigError(f"{name} is a suite ({tasks}): one run trains one of its tasks") from None
        raise TaskConfigError(str(exc)) from None


def __getattr__(name: str) -> Any:
    """`Task`, `TaskConfig`, `Batch` and `TaskConfigError`, imported (with torch) on first use."""
    if name in ("Batch", "Task", "TaskConfig", "TaskConfigError"):
        from discover.experiments.tasks import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_TASK", "SUITES", "TASKS", "Batch", "Task", "TaskConfig", "TaskConfigError", "get_task"]
