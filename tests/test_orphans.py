"""A job whose orchestrator is killed outright (SIGKILL: no handler, no cleanup) ends within a minute
on every backend, instead of at its own time limit, and `discover sandbox reap` then removes what
it left: the stopped container and the job's output mount."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .conftest import job_mounts, job_processes

ORCHESTRATOR = """
import sys
from pathlib import Path
from discover.experiments.baselines import builtin_baselines
from discover.experiments.runspec import RunSpec
from discover.sandbox.backends import BackendOptions, make_backend
from discover.sandbox.base import Limits
from discover.sandbox.runner import Sandbox
from discover.vetting.candidate import vet

backend, workdir, study = sys.argv[1:]
sandbox = Sandbox(make_backend(backend, BackendOptions()), Path(workdir), Limits(timeout_s=900), study)
candidate = vet(builtin_baselines()["softmax_attention"])
sandbox.train(candidate, RunSpec.resolve("mqar", {"steps": 1_000_000}), job_id="orphan")
"""
ENDS_WITHIN_S = 60.0


@pytest.mark.parametrize("backend", ["process", "bwrap", "docker"])
def test_a_job_whose_orchestrator_was_killed_ends_within_a_minute(backend, request, tmp_path):
    if backend != "process":
        request.getfixturevalue(f"{backend}_backend")  # skips (fails in CI) without the service
    study = f"orphans-{backend}-{os.getpid()}"
    orchestrator = subprocess.Popen([sys.executable, "-c", ORCHESTRATOR, backend, str(tmp_path), study])
    try:
        deadline = time.monotonic() + 120
        while not job_processes(tmp_path, study, stopped_containers=False):
            assert orchestrator.poll() is None, "the orchestrator ended before its job started"
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        time.sleep(2.0)  # the job is training now
    finally:
        orchestrator.kill()  # SIGKILL: nothing of discover's runs after this
        orchestrator.wait()
    killed = time.monotonic()
    while job_processes(tmp_path, study, stopped_containers=False):
        assert time.monotonic() - killed < ENDS_WITHIN_S, f"the {backend} job outlived its orchestrator"
        time.sleep(0.5)

    reaped = subprocess.run(
        [sys.executable, "-m", "discover.cli", "sandbox", "reap", "--study", study],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert reaped.returncode == 0, reaped.stdout + reaped.stderr
    assert job_mounts(tmp_path) == []
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=discover.study={study}"], capture_output=True, text=True
    )
    assert left.stdout.split() == []
