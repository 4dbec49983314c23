"""Host-side vetting: one trust policy, a candidate statically checked once per experiment and the
result passed on to every job, one place that says which metric value is better, one job spec."""

from __future__ import annotations

import json
import math
import sqlite3
import sys

import pytest

import discover.agents.runs as runs
import discover.vetting.static_check as rules
from discover.agents.config import load_config
from discover.agents.study import run_study
from discover.candidate_cli import resolve_candidate
from discover.experiments.baselines import builtin_baselines
from discover.experiments.jobspec import JobFile
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import get_task
from discover.sandbox.base import Job, Limits, prepare_job_dir
from discover.sandbox.process import ProcessBackend
from discover.sandbox.runner import Sandbox
from discover.vetting.candidate import Vetting, VettingMismatch, revet, vet
from discover.vetting.trust import is_trusted

from .conftest import CANDIDATES, TINY_STUDY

TINY = {"steps": 6, "log_every": 3, "test_examples": 64, "warmup_steps": 2}
LIMITS = Limits(timeout_s=300, memory_mb=4096)
STUDY = f'name = "vetting"\nproposer = "random"\n{TINY_STUDY}'


@pytest.fixture
def static_checks(monkeypatch) -> list[str]:
    """The source of every static check run from now on, whichever discover module calls it."""
    original = rules.static_check
    calls: list[str] = []

    def counting(source: str) -> list[rules.Violation]:
        calls.append(source)
        return original(source)

    for name, module in list(sys.modules.items()):
        if name.startswith("discover") and getattr(module, "static_check", None) is original:
            monkeypatch.setattr(module, "static_check", counting)
    return calls


def test_trust_is_decided_by_the_code_alone(tmp_path):
    baseline = builtin_baselines()["retention"]
    copy = tmp_path / "retention.py"  # outside the baselines folder, under any name
    copy.write_text(baseline.read_text())
    assert is_trusted(copy.read_text()) and resolve_candidate(str(copy)).trusted
    edited = tmp_path / "edited.py"
    edited.write_text(baseline.read_text() + "\n# edited\n")
    assert not is_trusted(edited.read_text()) and not resolve_candidate(str(edited)).trusted
    assert resolve_candidate("retention").trusted
    # Origins are trusted only when the caller (the proposers, above this layer) says so.
    assert not is_trusted("class Mixer: ...", "evolution")
    assert is_trusted("class Mixer: ...", "evolution", frozenset({"evolution", "random"}))
    assert not is_trusted("class Mixer: ...", "llm", frozenset({"evolution", "random"}))


def test_trusted_code_skips_the_static_check(static_checks):
    assert vet(builtin_baselines()["gla"]).violations == () and static_checks == []
    refused = vet(CANDIDATES / "syntax_error.py")
    assert not refused.trusted and refused.refused and len(static_checks) == 1
    assert "syntax error" in str(refused.violations[0])


def test_a_kept_vetting_is_reused_unparsed_and_only_for_the_same_code(tmp_path, static_checks):
    path = tmp_path / "mixer.py"
    path.write_text((CANDIDATES / "weak_short_conv.py").read_text())
    kept = json.loads(json.dumps(vet(path).vetting().model_dump(mode="json")))  # as in a checkpoint
    again = revet(path, Vetting.model_validate(kept))
    assert again.code_hash == kept["code_hash"] and not again.trusted and len(static_checks) == 1
    path.write_text(path.read_text() + "\nX = 1\n")
    with pytest.raises(VettingMismatch):
        revet(path, Vetting.model_validate(kept))


def test_a_job_runs_the_vetted_source_and_reads_only_the_job_file(tmp_path):
    path = tmp_path / "mixer.py"
    path.write_text((CANDIDATES / "weak_short_conv.py").read_text())
    candidate = vet(path)
    path.write_text("import os\n")  # changed after vetting: the job still gets what was vetted
    job = Job(job_id="j", action="fit", task="mqar", settings={"steps": 3}, seed=2, hidden_paths=["/x"])
    job_dir, _ = prepare_job_dir(job, candidate.source, tmp_path / "jobs")
    assert (job_dir / "candidate.py").read_text() == candidate.source
    spec = json.loads((job_dir / "job.json").read_text())
    assert set(spec) == set(JobFile.model_fields) and JobFile.model_validate(spec).seed == 2


@pytest.mark.parametrize(("task", "a", "b"), [("mqar", 0.9, 0.5), ("lm", 1.5, 2.0)])
def test_the_task_says_which_value_is_better(task, a, b):
    the_task = get_task(task)
    assert the_task.better(a, b) and not the_task.better(b, a) and not the_task.better(a, a)
    assert not the_task.better(math.nan, b) and not the_task.better(math.inf, b)
    assert the_task.better(a, math.nan) and the_task.better(b, -math.inf)


def test_check_then_train_checks_the_candidate_once(tmp_path, static_checks):
    """`discover train`'s path: vetted once, then a check job and three training jobs."""
    path = tmp_path / "mixer.py"
    path.write_text((CANDIDATES / "weak_short_conv.py").read_text())
    candidate = resolve_candidate(str(path))
    sandbox = Sandbox(ProcessBackend(allow_untrusted=True), tmp_path / "jobs", LIMITS)
    assert sandbox.check(candidate, RunSpec.resolve("mqar")).passed
    assert sandbox.train(candidate, RunSpec.resolve("mqar", TINY)).status == "ok"
    assert len(list((tmp_path / "jobs").iterdir())) == 4  # check, fit, predict, audit
    assert static_checks == [candidate.source]


def test_an_experiment_checks_its_candidate_once(tmp_path, monkeypatch, static_checks):
    """Through probe and screen of a real experiment of the study graph, with the grammar's designs
    taken as untrusted: one static check of the candidate, none of the (built-in) baseline."""
    monkeypatch.setattr(runs, "trusted_origins", frozenset)
    (tmp_path / "discover.toml").write_text(STUDY)
    backend = ProcessBackend(allow_untrusted=True)
    run_study(tmp_path, load_config(tmp_path), backend, max_experiments=1, say=lambda line: None)
    with sqlite3.connect(tmp_path / "knowledge.db") as connection:
        rows = connection.execute(
            "SELECT a.code, r.fidelity, r.status FROM run AS r JOIN architecture AS a "
            "ON r.architecture_id = a.id WHERE a.origin != 'baseline'"
        ).fetchall()
    assert [(fidelity, status) for _, fidelity, status in rows] == [("screen", "succeeded")]
    assert static_checks == [rows[0][0]]
