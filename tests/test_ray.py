"""`discover run --executor ray` against a real local Ray cluster (`ray start --head`, 4 CPU slots):
jobs run through it in the Docker sandbox, a Ray worker killed mid-job is released and retried,
the budget stays exact, and no container is left behind."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discover.sandbox import quota
from tests.conftest import require
from tests.test_study import TINY_STUDY, assert_ledger_exact


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> str:
    cli = shutil.which("ray")
    require(
        cli is not None and importlib.util.find_spec("ray") is not None,
        "no Ray: pip install 'discover-arch[ray]' (the Ray executor's tests)",
    )
    port = free_port()
    started = subprocess.run(
        [cli, "start", "--head", "--num-cpus", "4", "--port", str(port), "--disable-usage-stats",
         "--include-dashboard=false"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    yield f"127.0.0.1:{port}"
    subprocess.run([cli, "stop", "--force"], capture_output=True, timeout=120)


@pytest.fixture
def study(tmp_path, docker_backend) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(TINY_STUDY)
    return folder


def run_command(study: Path, address: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "discover.cli", "run", "-C", str(study), "--executor", "ray",
        "--ray-address", address, "--sandbox", "docker", *extra,
    ]  # fmt: skip


def query(folder: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(folder / "knowledge.db") as connection:
        return connection.execute(sql).fetchall()


def running_runs(folder: Path) -> list[tuple]:
    """The study's runs in progress; none while it is still creating its knowledge base."""
    if not (folder / "knowledge.db").exists():
        return []  # connecting would create the file
    try:
        return query(folder, "SELECT id FROM run WHERE status = 'running'")
    except sqlite3.OperationalError:  # the file exists a moment before its tables do
        return []


def study_containers(folder: Path, running_only: bool = False) -> list[str]:
    (study_id,) = (json.loads((folder / "study.json").read_text())["study_id"],)
    listed = subprocess.run(
        ["docker", "ps", "-q" if running_only else "-aq", "--filter", f"label=discover.study={study_id}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return listed.stdout.split()


def test_a_study_runs_its_jobs_on_the_ray_cluster(study, ray_cluster):
    done = subprocess.run(
        run_command(study, ray_cluster, "--budget", "1m", "--max-experiments", "2"),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "on the Ray cluster" in done.stdout
    sandboxes = {sandbox for (sandbox,) in query(study, "SELECT DISTINCT sandbox FROM run")}
    assert sandboxes == {"ray+docker"}
    assert query(study, "SELECT count(*) FROM run WHERE status = 'succeeded'")[0][0] >= 2
    assert_ledger_exact(study)
    assert study_containers(study) == []


def job_containers(job_id: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=discover.job={job_id}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return listed.stdout.split()


def ray_task_workers() -> list[int]:
    """Ray worker processes executing a discover job now (Ray titles them after the task)."""
    found = subprocess.run(["pgrep", "-f", "ray::run_on_node"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_a_worker_killed_mid_job_is_released_retried_and_charged_once(study, ray_cluster):
    process = subprocess.Popen(
        run_command(study, ray_cluster, "--budget", "1m", "--max-experiments", "1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and process.poll() is None:
        running = running_runs(study)
        # A training run's fit job (its job id is the run id) has its container up on the cluster.
        if running and job_containers(running[0][0]) and (workers := ray_task_workers()):
            for worker in workers:
                os.kill(worker, signal.SIGKILL)
            killed = running[0][0]
        time.sleep(0.2)
    output, _ = process.communicate(timeout=900)
    assert killed is not None, "no training job was seen running on the cluster\n" + output
    assert process.returncode == 0, output

    entries = query(study, "SELECT op, job_id FROM budgetentry ORDER BY seq")
    lost = [job for op, job in entries if op == "release"]
    assert lost, entries
    for job in lost:  # each lost job was reserved again and settled once by a charge
        ops = [op for op, job_id in entries if job_id == job]
        assert ops[-2:] == ["reserve", "charge"] and ops.count("charge") == 1, ops
    status, result = query(study, f"SELECT status, result FROM run WHERE id = '{lost[0]}'")[0]
    if status == "succeeded":
        assert "died" in " ".join(json.loads(result)["lost_attempts"])
    assert_ledger_exact(study)
    assert study_containers(study) == []


def test_resume_after_the_orchestrator_is_killed_reaps_its_jobs_on_the_cluster(study, ray_cluster):
    process = subprocess.Popen(
        run_command(study, ray_cluster, "--budget", "1m", "--max-experiments", "1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (study / "study.json").exists() and study_containers(study):
            break
        time.sleep(0.3)
    assert process.poll() is None, "the study ended before a job was seen on the cluster"
    time.sleep(1.0)
    process.kill()  # kill -9: no cleanup of any kind
    process.wait()
    resumed = subprocess.run(
        run_command(study, ray_cluster, "--resume", "--max-experiments", "1"),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "settled interrupted job" in resumed.stdout, resumed.stdout
    assert_ledger_exact(study)
    assert study_containers(study) == []


def test_doctor_checks_the_ray_cluster(study, ray_cluster):
    (study / "discover.toml").write_text(f'executor = "ray"\nray_address = "{ray_cluster}"\n' + TINY_STUDY)
    checked = subprocess.run(
        [sys.executable, "-m", "discover.cli", "doctor", "-C", str(study)],
        capture_output=True, text=True, timeout=300, env=os.environ | {"COLUMNS": "240"},
    )  # fmt: skip
    assert "Ray cluster" in checked.stdout and "1 live node(s), 4 CPUs" in checked.stdout, checked.stdout


def test_a_job_on_the_cluster_ends_within_a_minute_of_its_orchestrator_being_killed(study, ray_cluster):
    endless = TINY_STUDY.replace("settings = { steps = 10 }", "settings = { steps = 1000000 }")
    (study / "discover.toml").write_text(endless.replace("timeout_s = 120", "timeout_s = 900"))
    process = subprocess.Popen(
        run_command(study, ray_cluster, "--budget", "1h"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (study / "study.json").exists() and study_containers(study, running_only=True):
            break
        time.sleep(0.3)
    assert process.poll() is None, "the study ended before a job was seen on the cluster"
    process.kill()  # kill -9: Ray ends the driver's workers, and with them the jobs' leases
    process.wait()
    killed = time.monotonic()
    while study_containers(study, running_only=True):
        assert time.monotonic() - killed < 60, "the job outlived its orchestrator"
        time.sleep(0.5)
    reaped = subprocess.run(
        [sys.executable, "-m", "discover.cli", "sandbox", "reap"], capture_output=True, text=True, timeout=120
    )
    assert reaped.returncode == 0, reaped.stdout + reaped.stderr
    assert study_containers(study) == []
    assert not [
        point for source, point in quota.mounted() if not quota.owner_alive(source)
    ]  # no orphan mount
