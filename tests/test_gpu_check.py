"""The GPU check's reduced CPU mode: the same sections and code paths as on a GPU (harness, compile,
process sandbox, two workers, a short study), at toy shapes, so CI runs what a lent GPU runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from discover.experiments.baselines import builtin_baselines

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_cpu_mode_of_the_gpu_check_runs_every_section(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--cpu", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads((tmp_path / "gpu_check.json").read_text())
    eager = {row["baseline"]: row for row in found["harness"]}
    assert set(eager) == set(builtin_baselines())
    assert all(row["learns"] and row["tokens_per_s"] > 0 for row in eager.values()), eager
    (compiled,) = found["compile"]
    assert "error" not in compiled and compiled["tokens_per_s"] > 0
    assert found["sandbox"]["check_passed"] and found["sandbox"]["metric"] == "bits_per_byte"
    assert len(found["workers"]["each_tokens_per_s"]) == 2
    assert found["study"]["exit_code"] == 0 and found["study"]["charged_s"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {name} | no |" in table for name in builtin_baselines())
