"""The fidelity ladder: rungs between the screen and full fidelity, climbed one at a time by the
designs that stay ahead of the best baseline and in the top fraction of their rung; claims are
tested at full fidelity only."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from discover.agents.config import ConfigError, StudyConfig, validate
from discover.agents.context import fidelity_specs
from discover.experiments.suite import layered

from .conftest import discover


def test_rungs_sit_between_screen_and_full_with_their_settings_on_top():
    config = StudyConfig.model_validate({
        "task": "mqar", "settings": {"steps": 90, "num_kv_pairs": 2},
        "ladder": [{"name": "mid", "settings": {"steps": 60}}, {"name": "wide", "settings": {"d_model": 96}}],
    })  # fmt: skip
    specs = fidelity_specs(config)
    assert list(specs) == ["screen", "mid", "wide", "full"]
    assert [specs[f].parts[0].config.steps for f in specs] == [200, 60, 90, 90]
    assert specs["wide"].parts[0].config.d_model == 96 and specs["full"].parts[0].config.d_model == 64
    assert all(specs[f].parts[0].config.num_kv_pairs == 2 for f in specs)


def test_a_rung_merges_a_tasks_table_key_by_key():
    merged = layered({"steps": 5, "mqar": {"num_kv_pairs": 2, "seq_len": 32}}, {"mqar": {"seq_len": 64}})
    assert merged == {"steps": 5, "mqar": {"num_kv_pairs": 2, "seq_len": 64}}


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ([{"name": "full"}], "is a fidelity of every study"),
        ([{"name": "mid"}, {"name": "mid"}], "rung names must differ"),
        ([{"name": "Has Space"}], "ladder.0.name"),
        ([{"name": "mid", "steps": 3}], "ladder.0.steps"),
    ],
)
def test_bad_ladders_fail_in_one_line(ladder, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate({"ladder": ladder}, "discover.toml")
    assert "\n" not in str(caught.value)


LADDER_STUDY = """\
name = "ladder"
baselines = ["linear_attention"]
proposer = "evolution"
[settings]  # small enough that the delta rule solves it in a minute and linear attention does not
steps = 100
num_kv_pairs = 2
vocab_size = 16
seq_len = 16
lr = 1e-2
log_every = 20
test_examples = 128
warmup_steps = 10
[screen]
settings = { steps = 50 }
[[ladder]]
name = "mid"
settings = { steps = 70 }
[promotion]
min_screened = 2
fraction = 0.5
seeds = 3
replicate = false
[evolution]
initial = 3
population = 6
tournament = 2
[limits]
timeout_s = 120
memory_mb = 4096
"""


def test_promoted_designs_climb_the_ladder_before_any_verification(tmp_path: Path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(LADDER_STUDY)
    ran = discover(
        "run", "-C", str(folder), "--budget", "8m", "--sandbox", "process", "--max-experiments", "5"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with sqlite3.connect(folder / "knowledge.db") as connection:
        rows = connection.execute(
            "SELECT a.name, a.origin, r.fidelity, r.seed, r.status, r.result FROM run r "
            "JOIN architecture a ON a.id = r.architecture_id"
        ).fetchall()
    runs = [
        (name, origin, fidelity, seed, status, json.loads(result or "{}"))
        for name, origin, fidelity, seed, status, result in rows
    ]
    climbed = {name for name, origin, fidelity, *_ in runs if fidelity == "mid" and origin != "baseline"}
    verified = {name for name, origin, fidelity, *_ in runs if fidelity == "full" and origin != "baseline"}
    assert climbed, f"no design was promoted to the rung: {ran.stdout[-3000:]}"
    assert verified <= climbed  # nothing reaches full fidelity without climbing the rung
    baseline_mid = [run for run in runs if run[1] == "baseline" and run[2] == "mid"]
    assert len(baseline_mid) == 1 and baseline_mid[0][4] == "succeeded"  # trained once per study
    reference = baseline_mid[0][5]["value"]
    for name in verified:  # it went up only while ahead of the baseline on the rung
        mid = next(run for run in runs if run[0] == name and run[2] == "mid")
        assert mid[4] == "succeeded" and mid[5]["value"] > reference
    assert all(count == 1 for count in Counter((r[0], r[2], r[3]) for r in runs if r[2] == "mid").values())
