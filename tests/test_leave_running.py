"""A study a user can leave running: its budget survives a resume, one `discover run` at a time,
a scheduler's SIGTERM drains it cleanly, and discover's own errors are one line and a log file.
Real CLI, process sandbox (the grammar's designs and the built-in baselines are trusted)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TINY_STUDY, discover, job_mounts, job_processes

STUDY = f'name = "unattended"\nsandbox = "process"\n{TINY_STUDY}'


def start(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "discover.cli", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def study(tmp_path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(STUDY)  # no budget: discover.toml's default, 1h
    return folder


def recorded_budget(folder: Path) -> str:
    return json.loads((folder / "study.json").read_text())["budget"]


def test_a_resume_keeps_the_study_budget_and_says_when_it_changes(study):
    first = discover("run", "-C", str(study), "--budget", "2m", "--max-experiments", "0")
    assert first.returncode == 0, first.stdout + first.stderr
    assert recorded_budget(study) == "2m"

    resumed = discover("run", "-C", str(study), "--resume", "--max-experiments", "0")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "budget 2m" in resumed.stdout and recorded_budget(study) == "2m"  # not discover.toml's 1h
    assert "of 2.0 device-minutes" in discover("status", "-C", str(study)).stdout

    raised = discover("run", "-C", str(study), "--resume", "--budget", "3m", "--max-experiments", "0")
    assert raised.returncode == 0, raised.stdout + raised.stderr
    assert "budget changed from 2m to 3m" in raised.stdout and recorded_budget(study) == "3m"


def wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_one_writer_per_study_and_sigterm_drains(study):
    first = start("run", "-C", str(study), "--budget", "30m")
    try:
        wait_for(lambda: (study / "study.json").exists(), first)
        second = discover("run", "-C", str(study), "--resume")
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"is being run by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) <= 2
        assert first.poll() is None  # the first goes on unharmed
        assert discover("status", "-C", str(study)).returncode == 0  # readers need no lock

        first.send_signal(signal.SIGTERM)  # what `timeout`, systemd and Slurm send: drain, then stop
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output
    assert "interrupted: finishing the running jobs (SIGTERM" in output and "Traceback" not in output
    resumed = discover("run", "-C", str(study), "--resume", "--max-experiments", "1")  # the lock is free
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_an_internal_error_is_one_line_and_a_traceback_file(study):
    (study / "checkpoints.db").mkdir()  # the checkpoint store cannot open: discover's error, not the user's
    run = discover("run", "-C", str(study), "--budget", "2m")
    assert run.returncode == 1
    assert "Traceback" not in run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) <= 2 and "internal error" in run.stderr and "errors.log" in run.stderr, run.stderr
    assert "Traceback (most recent call last)" in (study / "errors.log").read_text()


# Far slower than the cost estimator's first guess (0.1 s a step): the budget covers the estimate,
# not the run, so the run must be stopped at the budget's ceiling.
SLOW_STUDY = STUDY.replace(
    "settings = { steps = 10 }", "settings = { steps = 50, seq_len = 512, batch_size = 256 }"
)


def test_a_job_that_would_overrun_the_budget_is_stopped_at_it(study):
    (study / "discover.toml").write_text(SLOW_STUDY)
    run = discover("run", "-C", str(study), "--budget", "0.5m")
    assert run.returncode == 0, run.stdout + run.stderr  # the study ends cleanly, saying why
    assert "stopped at the budget's ceiling" in run.stdout
    assert "the budget was spent while training baseline softmax_attention" in run.stdout
    status = json.loads(discover("status", "-C", str(study), "--json").stdout)
    assert 25.0 <= status["spent_s"] <= 30.0 + 5.0, status  # at most one job's start-up past the budget


@pytest.mark.parametrize("command", [["status"], ["show", "anything"], ["report"]])
def test_any_command_turns_an_internal_error_into_one_line(command, study, monkeypatch, capsys):
    """Every command goes through `main`: discover's own error is one line naming the log."""
    import discover.agents.status
    import discover.cli
    import discover.report.site

    def broken(*args, **kwargs):
        raise RuntimeError("injected fault")

    monkeypatch.setattr(discover.agents.status, "study_status", broken)
    monkeypatch.setattr(discover.agents.status, "design_detail", broken)
    monkeypatch.setattr(discover.report.site, "build_report", broken)
    monkeypatch.setattr(sys, "argv", ["discover", *command, "-C", str(study)])
    with pytest.raises(SystemExit) as exited:
        discover.cli.main()
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert "internal error: RuntimeError: injected fault" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) <= 2
    assert "injected fault" in (study / "errors.log").read_text()


def job_leftovers(study: Path) -> list:
    """The study's job processes, containers and output mounts still on this host."""
    study_id = json.loads((study / "study.json").read_text())["study_id"]
    return job_processes(study / "jobs", study_id) + job_mounts(study / "jobs")


@pytest.mark.parametrize("backend", ["docker", "bwrap"])
def test_two_signals_stop_a_study_at_once_and_leave_nothing_behind(backend, request, study):
    request.getfixturevalue(f"{backend}_backend")  # skips (fails in CI) without the service
    endless = SLOW_STUDY.replace('sandbox = "process"', f'sandbox = "{backend}"')
    (study / "discover.toml").write_text(
        endless.replace("steps = 50,", "steps = 20000,")
    )  # ~2,000 s estimated
    first = start("run", "-C", str(study), "--budget", "1h")
    try:
        wait_for(lambda: (study / "study.json").exists() and job_leftovers(study), first)
        time.sleep(2.0)  # the job is training
        first.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        first.send_signal(signal.SIGTERM)  # the second: stop now
        output, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, output
    stopped = time.monotonic()
    while leftovers := job_leftovers(study):
        assert time.monotonic() - stopped < 60, leftovers
        time.sleep(0.5)


@pytest.mark.parametrize("backend", ["docker", "bwrap"])
def test_one_sigterm_drains_a_study_and_leaves_nothing_behind(backend, request, study):
    request.getfixturevalue(f"{backend}_backend")  # skips (fails in CI) without the service
    (study / "discover.toml").write_text(STUDY.replace('sandbox = "process"', f'sandbox = "{backend}"'))
    first = start("run", "-C", str(study), "--budget", "30m")
    try:
        wait_for(lambda: (study / "study.json").exists() and job_leftovers(study), first)
        first.send_signal(signal.SIGTERM)  # the running job finishes, no new one starts
        output, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0 and "interrupted: finishing the running jobs (SIGTERM" in output, output
    stopped = time.monotonic()
    while leftovers := job_leftovers(study):
        assert time.monotonic() - stopped < 60, leftovers
        time.sleep(0.5)


AFTER_A_DRAINED_STOP = """
import os, signal, threading, time
from pathlib import Path
from discover.agents.interrupts import interrupts
from discover.sandbox.process import ProcessBackend
with interrupts(threading.Event(), print, ProcessBackend(), "s", Path("jobs")):
    os.kill(os.getpid(), signal.SIGTERM)  # the first signal: drain
print("drained; writing the report", flush=True)
os.kill(os.getpid(), signal.SIGTERM)  # the second, after the study loop has ended
time.sleep(5)
print("not stopped")
"""


def test_a_second_signal_after_a_drained_stop_still_stops_at_once():
    """Once the loop has drained, only the leaderboard and report are left; a second signal then
    must still mean "stop now" (status 130), not the default handler's death or traceback."""
    stopped = subprocess.run([sys.executable, "-c", AFTER_A_DRAINED_STOP], capture_output=True, text=True)
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert "drained; writing the report" in stopped.stdout and "not stopped" not in stopped.stdout
