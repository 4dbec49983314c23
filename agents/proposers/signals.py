"""A zero-cost signal for every design of the grammar, as an input of the surrogate's model.

The surrogate rates every untried design, so it needs the signal of each: NASWOT
(`discover.experiments.zero_cost`) of all few thousand, computed once per screening setting (about
0.05 s a design on one CPU core at the search benchmark's MQAR setting, four minutes in all) and
kept in the data cache under the setting's hash, one value per design's code hash, so a later
study of the same setting, or a resumed one, reads it back. The grammar's code is trusted: it runs
in this process.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from discover.agents.grammar import render, space
from discover.experiments.contract import CandidateError, code_hash
from discover.experiments.files import data_cache, write_json_atomic
from discover.experiments.runspec import RunSpec
from discover.experiments.zero_cost import naswot_of


def table_path(spec: RunSpec) -> Path:
    setting = json.dumps([spec.task.name, spec.config.model_dump(mode="json")], sort_keys=True)
    return data_cache() / "zero_cost" / f"naswot-{hashlib.sha256(setting.encode()).hexdigest()[:16]}.json"


def space_naswot(spec: RunSpec) -> np.ndarray:
    """NASWOT of every design of `space()`, in its order, at `spec`'s setting. A design the signal
    cannot read (it fails at initialisation) gets the lowest value found, less one."""
    path = table_path(spec)
    if path not in _tables:
        _tables[path] = _space_naswot(path, spec)
    return _tables[path]


_tables: dict[Path, np.ndarray] = {}  # this process's tables, by file: each proposal asks again


def _space_naswot(path: Path, spec: RunSpec) -> np.ndarray:
    known: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    sources = {code_hash(source): source for source in map(render, space())}
    missing = [design for design in sources if design not in known]
    if missing:
        with tempfile.TemporaryDirectory(prefix="discover-naswot-") as folder:
            for design in missing:
                candidate = Path(folder) / f"{design}.py"
                candidate.write_text(sources[design])
                try:
                    known[design] = naswot_of(candidate, spec)
                except (CandidateError, RuntimeError, ValueError):
                    known[design] = math.nan
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, known)
    values = np.array([known[design] for design in sources], dtype=float)
    finite = values[np.isfinite(values)]
    floor = finite.min() - 1 if finite.size else 0.0
    return np.where(np.isfinite(values), values, floor)
