"""Runtime guard for every job: notice when candidate code replaced a function a result depends on.

The static check (`discover.vetting.static_check`, on the host) rejects files that patch modules;
this is the second line. Before the candidate is imported, the job records the identity of every
function that computes what it reports (torch, builtins, json, the harness and probes); before it
writes any output it verifies none was swapped out.
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


def _callables(namespaces: dict[str, object]) -> Iterator[tuple[str, object]]:
    for prefix, namespace in namespaces.items():
        for name, value in vars(namespace).items():
            if callable(value) or isinstance(value, property | classmethod | staticmethod):
                yield f"{prefix}.{name}", value


class IntegrityGuard:
    """Snapshot at construction (after the trusted imports, before the candidate's), of torch and
    the standard namespaces plus `extra` (the job's own modules); `verify()` raises naming what
    changed."""

    def __init__(self, extra: dict[str, object] | None = None) -> None:
        self._namespaces: dict[str, object] = {**GUARDED_MODULES, **GUARDED_CLASSES, **(extra or {})}
        self._originals = dict(_callables(self._namespaces))  # kept alive, so ids stay unique
        self._snapshot = {name: id(value) for name, value in self._originals.items()}

    def verify(self) -> None:
        now = dict(_callables(self._namespaces))
        changed = sorted(
            name for name, ident in self._snapshot.items() if name not in now or id(now[name]) != ident
        )
        added = sorted(set(now) - set(self._snapshot))
        if changed or added:
            what = ", ".join((changed + added)[:5])
            raise IntegrityError(f"candidate code modified the evaluation runtime: {what}")
