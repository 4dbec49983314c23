"""Shared by the benchmark scripts: machine details and a section-per-script RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; each owns one section.\n"


def machine() -> str:
    if torch.cuda.is_available():
        device = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    else:
        device = "no GPU"
    cpu = platform.processor() or platform.machine()
    return (
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores, {device}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def write_section(name: str, body: str) -> None:
    """Replace the section `name` in RESULTS.md (or append it), leaving the others alone."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}\n"
    RESULTS.write_text(text)


def cache_config(config: dict) -> dict:
    """A run's configuration as the caches compare it: JSON types, and a setting left at None the
    same as one that did not exist yet (so adding an optional setting re-runs nothing)."""
    plain = json.loads(json.dumps(config, default=str))
    return {key: value for key, value in plain.items() if value is not None}
