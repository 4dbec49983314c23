"""The task registry: each task owns its data, backbone, recipe, metric and reference baselines."""

from discover.experiments.tasks.base import Batch, Task, TaskConfig, TaskConfigError
from discover.experiments.tasks.lm import LMTask
from discover.experiments.tasks.mqar import MQARTask

TASKS: dict[str, Task] = {task.name: task for task in (MQARTask(), LMTask())}
DEFAULT_TASK = "mqar"


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskConfigError(f"unknown task '{name}'; known: {', '.join(TASKS)}") from None


__all__ = ["DEFAULT_TASK", "TASKS", "Batch", "Task", "TaskConfig", "TaskConfigError", "get_task"]
