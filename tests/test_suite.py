"""Suites: a design screened on several tasks, each task its own budgeted sandbox job, scored by
the mean of its per-task quality against the reference baseline on each task; the per-task metrics
reach the knowledge base, the report and the prompts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from discover.experiments.harness import TrainResult
from discover.experiments.suite import SuiteSpec, resolve_suite, result_from
from discover.experiments.tasks import TaskConfigError, get_task
from discover.vetting.scoring import fitness

from .conftest import discover

MINI = ["mqar", "selective_copy"]


def task_result(task: str, value: float, tokens_per_s: float = 1000.0) -> TrainResult:
    return TrainResult(
        candidate="c", code_hash="h", task=task, seed=0, status="ok", metric="accuracy", value=value,
        metrics={"accuracy": value, "loss": 1.0}, final_train_loss=1.0, params=10, flops_per_token=1.0,
        tokens_per_s=tokens_per_s, peak_memory_mb=100.0, wall_time_s=2.0, steps=10, device="cpu",
        data_version="generated", config={}, versions={},
    )  # fmt: skip


def test_settings_reach_every_task_or_the_one_they_name():
    suite = resolve_suite("mini", {"mini": MINI})
    settings = {"steps": 50, "mqar": {"num_kv_pairs": 4}}
    full = SuiteSpec.resolve(suite, settings, seed=3)
    screen = SuiteSpec.resolve(suite, settings, seed=3, screen={"selective_copy": {"steps": 7}})
    mqar, copy = full.parts
    assert (mqar.config.steps, copy.config.steps) == (50, 50)
    assert mqar.config.num_kv_pairs == 4 and "num_kv_pairs" not in copy.settings
    assert full.steps == 100 and {part.seed for part in full.parts} == {3}
    # Screening: each task's own screening settings, then the study's [screen] over them.
    assert screen.parts[0].config.steps == get_task("mqar").screen_settings["steps"]
    assert screen.parts[1].config.steps == 7
    assert {part.seed for part in screen.with_seed(9).parts} == {9}


@pytest.mark.parametrize(
    ("task", "suites", "settings", "message"),
    [
        ("nosuch", {}, {}, "unknown task or suite 'nosuch'"),
        ("mini", {"mini": MINI}, {"noisy_recall": {"steps": 5}}, "not a task of mini"),
        ("mini", {"mini": MINI}, {"mqar": 5}, "must be a table"),
        ("mini", {"mini": MINI}, {"no_such_key": 5}, "unknown setting 'no_such_key'"),
        ("mixed", {"mixed": ["mqar", "lm"]}, {}, "do not average"),
        ("empty", {"empty": []}, {}, "unknown task or suite 'empty'"),
    ],
)
def test_bad_suites_and_settings_fail_in_one_line(task, suites, settings, message):
    with pytest.raises(TaskConfigError, match=message) as caught:
        SuiteSpec.resolve(resolve_suite(task, suites), settings)
    assert "\n" not in str(caught.value)


def test_a_single_task_is_a_suite_of_one_whose_result_is_its_own():
    spec = SuiteSpec.resolve(resolve_suite("mqar"), {"steps": 30})
    assert spec.suite.single and spec.suite.metric == "accuracy"
    alone = task_result("mqar", 0.5)
    assert spec.combine({"mqar": alone}) is alone


def test_fitness_on_a_suite_is_the_mean_of_per_task_terms():
    suite = resolve_suite("mini", {"mini": MINI})
    spec = SuiteSpec.resolve(suite)
    design = spec.combine(
        {"mqar": task_result("mqar", 0.9), "selective_copy": task_result("selective_copy", 0.2)}
    )
    reference = spec.combine(
        {"mqar": task_result("mqar", 0.6, 2000.0), "selective_copy": task_result("selective_copy", 0.4)}
    )
    assert design.value == pytest.approx(0.55) and design.metric == "mean accuracy"
    assert design.metrics["mqar.accuracy"] == 0.9 and design.metrics["selective_copy.accuracy"] == 0.2
    stored = result_from(json.loads(design.model_dump_json()))  # as the knowledge base gives it back
    suite_fitness = fitness(stored, reference, suite)
    per_task = [
        fitness(design.parts[name], reference.parts[name], get_task(name))
        for name in ("mqar", "selective_copy")
    ]
    assert suite_fitness.quality == pytest.approx(sum(f.quality for f in per_task) / 2)
    assert suite_fitness.efficiency == pytest.approx(sum(f.efficiency for f in per_task) / 2)
    # A gain on one task and a loss on the other: the mean value is ahead, so no claim is implied
    # by quality alone; the relative improvement is on the mean, as a verification compares it.
    assert suite_fitness.relative_improvement == pytest.approx((0.55 - 0.5) / 0.5)
    diverged = design.model_copy(update={"status": "diverged"})
    assert fitness(diverged, reference, suite).value == 0.0


SUITE_STUDY = """\
name = "suite"
task = "mini"
baselines = ["softmax_attention"]
proposer = "random"
workers = 2
[suites]
mini = ["mqar", "selective_copy"]
[settings]
steps = 30
log_every = 10
test_examples = 64
warmup_steps = 5
[screen]
settings = { steps = 20, selective_copy = { steps = 15 } }
[limits]
timeout_s = 120
memory_mb = 4096
"""


def test_a_study_screens_every_design_on_every_task_of_its_suite(tmp_path: Path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(SUITE_STUDY)
    ran = discover(
        "run", "-C", str(folder), "--budget", "6m", "--sandbox", "process", "--max-experiments", "2"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with sqlite3.connect(folder / "knowledge.db") as connection:
        runs = connection.execute(
            "SELECT id, task, fidelity, result, cost_device_seconds FROM run WHERE status = 'succeeded'"
        ).fetchall()
        charges = dict(connection.execute("SELECT job_id, seconds FROM budgetentry WHERE op = 'charge'"))
    assert len(runs) >= 2  # the baseline and at least one design
    for run_id, task, fidelity, result, cost in runs:
        result = json.loads(result)
        assert task == "mini" and result["metric"] == "mean accuracy"
        assert set(result["parts"]) == set(MINI)
        steps = (
            {"mqar": 20, "selective_copy": 15} if fidelity == "screen" else {"mqar": 30, "selective_copy": 30}
        )
        assert {name: part["steps"] for name, part in result["parts"].items()} == steps
        assert result["value"] == pytest.approx(sum(part["value"] for part in result["parts"].values()) / 2)
        # Each task was its own job, charged to the budget, and the run costs what its jobs did.
        jobs = [f"{run_id}-{name}" for name in MINI]
        assert all(job in charges for job in jobs)
        assert cost == pytest.approx(sum(charges[job] for job in jobs))

    report = discover("report", "-C", str(folder))
    assert report.returncode == 0, report.stderr
    index = (folder / "report" / "index.html").read_text()
    assert "<th>mqar (screen)</th>" in index and "<th>selective_copy (screen)</th>" in index
    assert "(mqar " in (folder / "leaderboard.md").read_text()  # each task's value beside the mean
    pages = sorted((folder / "report" / "designs").glob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text()
        if "Never trained" in text:
            continue
        assert "<h2>Per task</h2>" in text and "<td>selective_copy</td>" in text
        assert "softmax_attention (best baseline)" in text
