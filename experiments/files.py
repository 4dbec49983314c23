"""Writing files that another process may read at any moment (a job's outputs, a study's records)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    """Readers never see a half-written file: write beside it, then rename over it."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_json_atomic(path: Path, data: Any) -> None:
    """`data` as indented JSON, written atomically."""
    write_atomic(path, json.dumps(data, indent=2))


def data_cache() -> Path:
    """Where prepared task data lives (`DISCOVER_CACHE_DIR`, by default ~/.cache/discover). Jobs are
    told the same path and shown only the prepared folders they read."""
    return Path(os.environ.get("DISCOVER_CACHE_DIR") or Path.home() / ".cache" / "discover")
