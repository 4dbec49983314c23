"""Runtime guard for evaluation: notice when candidate code replaced a function the score depends on.

The static check (`static_check.py`) rejects files that patch modules; this is the second line.
Before the candidate is imported, the evaluation process records the identity of every function
that turns model outputs into a metric; after evaluation it verifies none was swapped out.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator

import torch
import torch.nn.functional as F

GUARDED_MODULES = {"torch": torch, "torch.nn.functional": F, "builtins": builtins, "json": json}
GUARDED_CLASSES = {"torch.Tensor": torch.Tensor, "torch.nn.Module": torch.nn.Module}


class IntegrityError(RuntimeError):
    pass


def _callables() -> Iterator[tuple[str, object]]:
    for prefix, namespace in (*GUARDED_MODULES.items(), *GUARDED_CLASSES.items()):
        for name, value in vars(namespace).items():
            if callable(value) or isinstance(value, property | classmethod | staticmethod):
                yield f"{prefix}.{name}", value


class IntegrityGuard:
    """Snapshot at construction; `verify()` raises naming what changed."""

    def __init__(self) -> None:
        self._snapshot = {name: id(value) for name, value in _callables()}
        self._originals = dict(_callables())  # keep them alive so ids stay unique

    def verify(self) -> None:
        now = dict(_callables())
        changed = sorted(
            name for name, ident in self._snapshot.items() if name not in now or id(now[name]) != ident
        )
        added = sorted(set(now) - set(self._snapshot))
        if changed or added:
            what = ", ".join((changed + added)[:5])
            raise IntegrityError(f"candidate code modified the evaluation runtime: {what}")
