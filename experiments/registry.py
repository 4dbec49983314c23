"""Extension points: a named registry of lazily imported entries.

Each kind of extension (tasks here, sandbox backends in `discover.sandbox.backends`, proposers in
`discover.agents.proposers`) keeps one `Registry`, filled by one line per entry in one file:

    TASKS.register("mqar", "discover.experiments.tasks.mqar:MQARTask", "associative recall")

Entries are "module:attribute" strings, imported on first use, so that listing the names (help
texts, config validation) imports nothing heavy, and a broken extension fails only when chosen.
Whatever reads the list of names (the chooser, config validation, the CLI's help, `doctor`, Ray,
the documented `study.toml`) asks the registry, so a new entry shows up everywhere at once.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownEntry(ValueError):
    """A name no entry of the registry has; the message is one line that lists the known ones."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "task", "sandbox backend", "proposer": for messages
        self._targets: dict[str, str] = {}
        self._summaries: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()

    def register(self, name: str, target: str, summary: str) -> None:
        """Add an entry: `target` is "module:attribute", the attribute being what `get` returns;
        `summary` is a few words for help texts and the documented configuration."""
        module, sep, attribute = target.partition(":")
        if not (sep and module and attribute):
            raise ValueError(f"{self.kind} {name!r}: target must be 'module:attribute', got {target!r}")
        if name in self._targets and self._targets[name] != target:
            raise ValueError(f"{self.kind} {name!r} is registered already, as {self._targets[name]}")
        self._targets[name] = target
        self._summaries[name] = summary

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return list(self._targets)

    def summaries(self) -> dict[str, str]:
        """name -> summary, in registration order."""
        return dict(self._summaries)

    def get(self, name: str) -> T:
        if name not in self._targets:
            raise UnknownEntry(f"unknown {self.kind} '{name}'; known: {', '.join(self._targets)}")
        with self._lock:
            if name not in self._loaded:
                module, _, attribute = self._targets[name].partition(":")
                self._loaded[name] = getattr(importlib.import_module(module), attribute)
            return self._loaded[name]

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) for every entry, importing each."""
        for name in self.names():
            yield name, self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: Any) -> bool:
        return name in self._targets

    def help(self, extra: tuple[str, ...] = ()) -> str:
        """'a, b or c', for help texts."""
        choices = [*extra, *self._targets]
        return ", ".join(choices[:-1]) + (" or " if len(choices) > 1 else "") + choices[-1]
