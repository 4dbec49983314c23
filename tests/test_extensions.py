"""Each extension point takes one new file and one registration line, and the new entry then works
through the real `discover` command: a task that wraps MQAR, a proposer that proposes a fixed
baseline, a sandbox backend that wraps `process`.

Each test writes its file into the installed (editable) package and its line into the registry,
exactly as a contributor would, so the command and the sandbox jobs it starts (fresh interpreters
that import discover) both see it; the fixture restores both files afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import discover.agents.proposers as proposers_package
import discover.experiments.tasks as tasks_package
import discover.sandbox.backends as backends_module

from .conftest import TINY_STUDY, discover

FAST = ["--set", "steps=20", "--set", "log_every=10", "--set", "test_examples=64"]


@contextmanager
def extension(new_file: Path, code: str, registry: Path, line: str) -> Iterator[None]:
    """`new_file` with `code`, and `line` appended to `registry`, for the duration of the block."""
    assert not new_file.exists(), f"{new_file} exists already"
    before = registry.read_text()
    try:
        new_file.write_text(code)
        registry.write_text(before + line + "\n")
        yield
    finally:
        registry.write_text(before)
        new_file.unlink(missing_ok=True)


def package_dir(module) -> Path:
    return Path(module.__file__).parent


WRAPPED_TASK = """
from discover.experiments.tasks.mqar import MQARTask


class WrappedMQAR(MQARTask):
    name = "wrapped_mqar"
"""


def test_a_new_task_is_one_file_and_one_line(tmp_path):
    folder = package_dir(tasks_package)
    line = 'TASKS.register("wrapped_mqar", "discover.experiments.tasks.wrapped_mqar:WrappedMQAR", "again")'
    with extension(folder / "wrapped_mqar.py", WRAPPED_TASK, folder / "__init__.py", line):
        assert "wrapped_mqar" in discover("train", "--help").stdout
        run = discover(
            "train", "gla", "--task", "wrapped_mqar", *FAST, "--out", str(tmp_path / "run"), "--json"
        )
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert result["task"] == "wrapped_mqar" and result["metric"] == "accuracy" and result["steps"] == 20
        assert discover("init", str(tmp_path / "study")).returncode == 0
        assert "#   wrapped_mqar" in (tmp_path / "study" / "discover.toml").read_text()
    assert "wrapped_mqar" not in discover("train", "--help").stdout  # the fixture put things back


FIXED_PROPOSER = '''
from discover.agents.proposers.base import Proposal, Proposer, ProposerStop
from discover.experiments.baselines import builtin_baselines


class FixedBaselineProposer(Proposer):
    """Proposes the built-in linear attention, once."""

    name = "fixed"
    origin = "fixed"
    trusted = True

    def propose(self, study, number, parent_ids, context):
        if "fixed-linear-attention" in study.kb.architecture_names(study.study_id):
            raise ProposerStop("exhausted", "the one fixed design was proposed already")
        code = builtin_baselines()["linear_attention"].read_text()
        return Proposal(name="fixed-linear-attention", motivation="fixed", code=code, origin=self.origin)
'''


def test_a_new_proposer_is_one_file_and_one_line(tmp_path):
    folder = package_dir(proposers_package)
    line = (
        'PROPOSERS.register("fixed", "discover.agents.proposers.fixed:FixedBaselineProposer", "one design")'
    )
    study = tmp_path / "study"
    study.mkdir()
    (study / "discover.toml").write_text(f'name = "fixed"\n{TINY_STUDY}')
    with extension(folder / "fixed.py", FIXED_PROPOSER, folder / "__init__.py", line):
        assert "fixed" in discover("run", "--help").stdout
        run = discover(
            "run", "-C", str(study), "--proposer", "fixed", "--sandbox", "process", "--budget", "10m"
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "proposer fixed" in run.stdout
        assert "the proposer found no untried design" in run.stdout
    with sqlite3.connect(study / "knowledge.db") as connection:
        rows = connection.execute(
            "SELECT architecture.origin, run.status FROM run JOIN architecture ON run.architecture_id = "
            "architecture.id WHERE architecture.name = 'fixed-linear-attention'"
        ).fetchall()
    assert rows == [("fixed", "succeeded")]  # trusted by its proposer, so the process backend ran it


LOGGED_BACKEND = '''
import os

from discover.sandbox.process import ProcessBackend


class LoggedProcessBackend(ProcessBackend):
    """The process backend, noting each job it runs in the file $DISCOVER_TEST_BACKEND_LOG."""

    name = "logged_process"

    def execute(self, job, job_dir, out_dir):
        outcome = super().execute(job, job_dir, out_dir)
        with open(os.environ["DISCOVER_TEST_BACKEND_LOG"], "a") as log:
            log.write(f"{job.action} {outcome.status}\\n")
        return outcome
'''


def test_a_new_sandbox_backend_is_one_file_and_one_line(tmp_path):
    folder = package_dir(backends_module)
    line = 'BACKENDS.register("logged_process", "discover.sandbox.logged_process:LoggedProcessBackend", "")'
    log = tmp_path / "jobs.log"
    env = {**os.environ, "DISCOVER_TEST_BACKEND_LOG": str(log)}
    with extension(folder / "logged_process.py", LOGGED_BACKEND, folder / "backends.py", line):
        assert "logged_process" in discover("check", "--help").stdout
        run = discover("check", "deltanet", "--sandbox", "logged_process", env=env)
        assert run.returncode == 0, run.stderr
        assert "sandbox: logged_process" in run.stdout
        assert log.read_text() == "check ok\n"
        # It does not isolate (it is the process backend), so untrusted code is refused as there.
        untrusted = tmp_path / "mine.py"
        gla = package_dir(tasks_package).parent / "baselines" / "gla.py"
        untrusted.write_text(gla.read_text() + "\n# mine\n")
        refused = discover("check", str(untrusted), "--sandbox", "logged_process", env=env)
        assert refused.returncode == 1 and "runs only trusted code" in refused.stderr
        doctor = discover("doctor", "-C", str(tmp_path), env=env)
        assert "logged_process" in doctor.stdout


@pytest.mark.parametrize(
    "registry", [tasks_package.TASKS, proposers_package.PROPOSERS, backends_module.BACKENDS]
)
def test_every_registered_entry_imports_and_is_documented(registry):
    from discover.agents.config import default_config_text

    documented = default_config_text()
    for name, entry in registry.items():
        assert entry is not None
        assert f"#   {name}" in documented
