"""The host paths a sandbox must see read-only so that the job can run this same Python and discover."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACKAGES = ("discover", "discover.experiments", "discover.sandbox")


def host_runtime_paths() -> list[Path]:
    """The interpreter's prefixes, plus discover's own folders when they live outside them (an
    editable install maps each top-level folder of the source tree into the package)."""
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    paths = set(prefixes)
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = Path(location).resolve()
            if not any(folder.is_relative_to(prefix) for prefix in prefixes):
                paths.add(folder)
    return sorted(paths)
