"""A run resolved once: the task object, the settings as given, the config they validate to, the seed.

Built where a user's words are read (the CLI's --task and --set, a study's configuration) and
passed down as an object, so that nothing below looks the task up by name or validates the
settings again.

    spec = RunSpec.resolve("mqar", {"steps": 200}, seed=1)
    sandbox.train(vetted, spec)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from discover.experiments.tasks import Task, TaskConfig, get_task


@dataclass(frozen=True)
class RunSpec:
    task: Task
    settings: dict[str, Any]  # the overrides given, as validated here: what a job is told in job.json
    config: TaskConfig  # the task's defaults with `settings` applied and validated
    seed: int = 0

    @classmethod
    def resolve(cls, task: Task | str, settings: dict[str, Any] | None = None, seed: int = 0) -> RunSpec:
        """Raises TaskConfigError (one line) for an unknown task or a bad setting."""
        the_task = get_task(task) if isinstance(task, str) else task
        settings = dict(settings or {})
        config = the_task.config(settings)
        # Each given setting as validated here, where the user's words mean what they say: a path
        # relative to this directory, say, is absolute before a job in another directory reads it.
        told = {key: value if key == "preset" else getattr(config, key) for key, value in settings.items()}
        return cls(the_task, told, config, seed)

    def with_seed(self, seed: int) -> RunSpec:
        return replace(self, seed=seed)

    @property
    def steps(self) -> int:
        return self.config.steps
