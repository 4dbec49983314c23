"""`discover run` end to end: the real CLI, sandbox (Docker), knowledge base and budget ledger, on a
task small enough to train in seconds. Includes kill -9 at several points and `--resume`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discover.agents.grammar import CLASSICS, readable_name

from .conftest import discover

TINY_STUDY = """\
name = "tiny"
baselines = ["softmax_attention"]
[settings]
steps = 40
log_every = 10
test_examples = 64
warmup_steps = 5
[screen]
settings = { steps = 20 }
[promotion]
min_screened = 2
fraction = 0.5
seeds = 3
[evolution]
initial = 2
population = 6
tournament = 2
[limits]
timeout_s = 120
memory_mb = 4096
"""


@pytest.fixture
def study(tmp_path, docker_backend) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(TINY_STUDY)
    return folder


def start(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "discover.cli", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def query(folder: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(folder / "knowledge.db") as connection:
        return connection.execute(sql).fetchall()


def assert_ledger_exact(folder: Path) -> None:
    """Every reservation settled once (a released job may be reserved again: a retry), nothing
    charged twice; every training run's recorded cost is its charge."""
    entries = query(folder, "SELECT op, job_id, seconds FROM budgetentry ORDER BY seq")
    history: dict[str, list[str]] = {}
    for op, job, _ in entries:
        history.setdefault(job, []).append(op)
    for job, ops in history.items():
        settled = ops[1::2]
        assert ops[0::2] == ["reserve"] * len(settled), (job, ops)
        assert "charge" not in settled[:-1] and set(settled) <= {"charge", "release"}, (job, ops)
    charges = {job: seconds for op, job, seconds in entries if op == "charge"}
    runs = query(folder, "SELECT id, cost_device_seconds FROM run WHERE cost_device_seconds IS NOT NULL")
    for run_id, cost in runs:
        assert charges.pop(run_id) == pytest.approx(cost, abs=1e-9)
    assert all("-check-" in job for job in charges), charges  # what is left are the probe jobs


def test_run_spends_the_budget_and_prints_a_leaderboard(study):
    finished = discover("run", "-C", str(study), "--budget", "2m")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    out = finished.stdout
    assert "proposer evolution" in out  # no endpoint, no earlier studies: `auto` is evolution
    assert json.loads((study / "study.json").read_text())["proposer"] == "evolution"  # a resume keeps it
    assert "training baseline softmax_attention" in out
    assert "stopped because the budget is spent" in out
    assert "softmax_attention" in out
    assert (study / "leaderboard.md").read_text().startswith("# tiny: leaderboard on mqar")
    assert f"report: {(study / 'report' / 'index.html').resolve().as_uri()}" in out  # written at the end

    spent = sum(seconds for (seconds,) in query(study, "SELECT seconds FROM budgetentry WHERE op = 'charge'"))
    # Jobs are admitted only while their reservation (1.2x the mean cost so far) fits; a job may
    # still run past its estimate on a loaded machine, so allow a little.
    assert spent <= 120 * 1.1, spent
    assert_ledger_exact(study)
    screened = query(study, "SELECT COUNT(*) FROM run WHERE fidelity = 'screen' AND status = 'succeeded'")
    assert screened[0][0] >= 3  # the baseline and at least two designs
    findings = query(study, "SELECT verdict, statement FROM finding WHERE study_id IS NOT NULL")
    assert findings and all(verdict in ("supports", "refutes", "inconclusive") for verdict, _ in findings)
    # Designs go by readable names: evolution starts with the grammar's linear attention, "add-elu1".
    named = finished_experiments(study)
    assert readable_name(CLASSICS["linear attention"]) in named
    assert not any(name.startswith("motif-") for name in named)
    leaderboard_md = (study / "leaderboard.md").read_text()
    assert all(f"| {name} |" in leaderboard_md and name in out for name in named)
    candidates = [study / "candidates" / f"{name}.py" for name in named]
    assert all(path.is_file() and (study / "runs" / path.stem).is_dir() for path in candidates)

    status = discover("status", "-C", str(study))
    assert status.returncode == 0, status.stderr
    assert "tiny on mqar: spent" in status.stdout and "of 2.0 device-minutes" in status.stdout
    as_json = json.loads(discover("status", "-C", str(study), "--json").stdout)
    assert as_json["spent_s"] == pytest.approx(spent) and as_json["reserved_s"] == 0
    leaderboard = [row["name"] for row in as_json["leaderboard"]]
    assert named <= set(leaderboard) and "softmax_attention" in leaderboard
    assert all(name in status.stdout for name in leaderboard[:15])  # the table shows the top 15
    best = as_json["leaderboard"][0]["name"]
    shown = discover("show", best, "-C", str(study), "--code")
    assert shown.returncode == 0 and "screen" in shown.stdout and "class Mixer" in shown.stdout
    missing = discover("show", "no-such-design", "-C", str(study))
    assert missing.returncode == 2 and "no design named" in missing.stderr


def finished_experiments(folder: Path) -> set[str]:
    rows = query(
        folder,
        "SELECT architecture.name FROM run JOIN architecture ON run.architecture_id = architecture.id "
        "WHERE run.fidelity = 'screen' AND run.status = 'succeeded' AND architecture.origin = 'evolution'",
    )
    return {name for (name,) in rows}


def _holds(condition) -> bool:
    try:
        return condition()
    except sqlite3.OperationalError:  # the study is still creating its tables
        return False


def wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "the study did not get there in time"
        time.sleep(0.2)


@pytest.mark.parametrize("point", ["baseline", "experiments"])
def test_kill_9_then_resume_loses_nothing_and_charges_nothing_twice(study, point):
    process = start("run", "-C", str(study), "--budget", "10m", "--max-experiments", "4")
    try:
        if point == "baseline":  # killed while the first baseline trains

            def there() -> bool:
                return bool(query(study, "SELECT 1 FROM run WHERE status = 'running'"))
        else:  # killed after two experiments finished, probably with a third in flight

            def there() -> bool:
                return len(finished_experiments(study)) >= 2

        wait_for(lambda: (study / "knowledge.db").exists() and there(), process)
        before = finished_experiments(study)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()

    again = discover("run", "-C", str(study), "--resume", "--budget", "10m", "--max-experiments", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert before <= finished_experiments(study)  # nothing finished was lost
    assert len(finished_experiments(study)) > len(before)  # and the study went on
    assert_ledger_exact(study)
    interrupted = query(study, "SELECT COUNT(*) FROM run WHERE status = 'running'")[0][0]
    assert interrupted == 0  # every run the kill cut short is settled as failed
    assert "settled interrupted job" in again.stdout or point == "experiments"


def test_bad_input_gets_one_line_and_nothing_is_written(tmp_path):
    folder = tmp_path / "study"
    for args, words in [
        (("run", "-C", str(folder), "--budget", "lots"), "budget 'lots' is not understood"),
        (("run", "-C", str(folder), "--proposer", "oracle"), "proposer"),
        (("run", "-C", str(folder), "--resume"), "holds no study to resume"),
    ]:
        result = discover(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (folder / "knowledge.db").exists()

    assert discover("init", str(folder)).returncode == 0
    assert 'budget = "1h"' in (folder / "discover.toml").read_text()
    again = discover("init", str(folder))
    assert again.returncode == 2 and "exists already" in again.stderr
    (folder / "discover.toml").write_text("budget = [")
    broken = discover("run", "-C", str(folder))
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr


def test_a_study_folder_is_not_run_twice_without_resume(study):
    (study / "study.json").write_text('{"study_id": "x", "heldout_seed": 1, "created_at": "now"}')
    result = discover("run", "-C", str(study))
    assert result.returncode == 2 and "continue it with --resume" in result.stderr


CAUSAL = '''\
import torch
import torch.nn as nn


class Mixer(nn.Module):
    """A causal running mean of a projection."""

    def __init__(self, d_model: int, num_heads: int = 4, **kwargs) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(1, x.shape[1] + 1, device=x.device, dtype=x.dtype)[None, :, None]
        return self.out(self.proj(x).cumsum(1) / steps)
'''
READS_AHEAD = CAUSAL.replace("self.proj(x).cumsum(1)", "self.proj(x).flip(1).cumsum(1).flip(1)")
PLAN = {
    "name": "running_mean",
    "hypothesis": "a running mean keeps every key-value pair in one vector",
    "motivation": "averaging as the simplest possible associative memory [bold]a floor[/bold] <b>to beat</b>",
    "design_plan": "project, take the causal cumulative mean over time, project back",
}


def test_a_study_whose_researcher_only_repeats_itself_stops_on_its_own(study, openai_server):
    """The model answers its code in a python fence (no re-ask), then proposes the same idea again
    and again: each repeat is asked for again, shown what it repeated, and each experiment ends a
    duplicate that cost no device time, so only the idle limit ends the study, with one line."""
    (study / "discover.toml").write_text(
        "max_idle_experiments = 3\n"
        + TINY_STUDY
        + f'[llm]\nbase_url = "{openai_server.base_url}"\ndefault_model = "scripted"\n'
    )
    answer = lambda value: {"content": json.dumps(value)}  # noqa: E731
    fenced = {"content": f"Here is the file.\n\n```python\n{CAUSAL}```\n\nIt is causal by construction."}
    findings = {"findings": [{"statement": "a running mean trains", "verdict": "inconclusive"}]}
    # e00001 trains; e00002-e00004 each plan the same idea three times (asked again twice).
    openai_server.script = [answer(PLAN), fenced, answer(findings), *[answer(PLAN)] * 9]
    result = discover("run", "-C", str(study), "--budget", "10m")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 experiments in a row gave nothing to train" in result.stdout, result.stdout
    assert openai_server.script == []  # stopped right after the third repeat: no request more
    assert query(study, "SELECT status FROM llmcall WHERE status != 'ok'") == []  # no re-ask, ever
    trained = query(
        study, "SELECT a.name, r.status FROM run r JOIN architecture a ON a.id = r.architecture_id "
        "WHERE a.origin = 'llm'",
    )  # fmt: skip
    assert trained == [("running_mean-e00001", "succeeded")]
    assert query(study, "SELECT hypothesis FROM architecture WHERE origin = 'llm'") == [(PLAN["hypothesis"],)]
    prompts = [body["messages"][0]["content"] for path, body in openai_server.requests if "chat" in path]
    again = [prompt for prompt in prompts if "repeated designs already tried" in prompt]
    assert len(again) == 6 and "running_mean-e00002: the same idea as running_mean-e00001" in again[0]
    study_repeats = prompts[-1].split("## Plans in this study that repeated an earlier design")[1]
    assert "running_mean-e00003: the same idea as running_mean-e00001" in study_repeats  # from checkpoints
    status = json.loads(discover("status", "-C", str(study), "--json").stdout)
    assert status["experiments"] == {"screened": 1, "duplicate": 3}  # counted, though no design was kept


def test_llm_study_survives_every_failure_and_records_it(study, openai_server):
    (study / "discover.toml").write_text(
        TINY_STUDY + f'[llm]\nbase_url = "{openai_server.base_url}"\ndefault_model = "scripted"\n'
        'max_retries = 1\ntimeout_s = 1.0\nprices = { "scripted" = [1.0, 2.0] }\njudge = true\n'
    )
    answer = lambda value: {"content": json.dumps(value)}  # noqa: E731
    openai_server.script = [
        # e00001: a rate limit, then the plan; code that reads the future, repaired after a malformed reply.
        {"status": 429}, answer(PLAN),
        answer({"code": READS_AHEAD}),
        {"content": "Here is the fixed file: class Mixer ..."}, answer({"code": CAUSAL}),
        answer({"score": 0.2, "rationale": "a running mean is a known weak memory"}),
        answer({"findings": [{"statement": "a running mean cannot recall pairs", "verdict": "refutes"}]}),
        # e00002: a stalled request (timed out), then a 500 the retries do not outlast.
        {"sleep": 3, "content": "late"}, {"status": 500},
        # e00003: an empty reply, then an oversized one.
        {"content": ""}, {"content": "{" + "x" * 200_000 + "}"},
    ]  # fmt: skip
    result = discover("run", "-C", str(study), "--budget", "10m", "--max-experiments", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "proposer llm" in result.stdout
    assert openai_server.script == []  # every scripted reply was asked for

    runs = dict(query(study, "SELECT a.name, r.status || ': ' || coalesce(r.failure_reason, '') "
                             "FROM run AS r JOIN architecture AS a ON r.architecture_id = a.id "
                             "WHERE a.origin = 'llm'"))  # fmt: skip
    assert runs["running_mean-e00001"].startswith("rejected: causality"), runs
    assert runs["running_mean-e00001-r1"].startswith("succeeded"), runs
    judged = query(study, "SELECT run.result FROM run WHERE run.result LIKE '%rationale%'")
    assert len(judged) == 1 and '"score": 0.2' in judged[0][0]
    statuses = [status for (status,) in query(study, "SELECT status FROM llmcall")]
    assert statuses.count("malformed") >= 3 and statuses.count("error") >= 1, statuses
    cost = query(study, "SELECT SUM(cost_usd) FROM llmcall")[0][0]
    assert cost > 0
    findings = query(study, "SELECT statement FROM finding WHERE tags LIKE '%analyst%'")
    assert findings == [("a running mean cannot recall pairs",)]
    assert_ledger_exact(study)

    # Every call is recorded against its experiment, and so are the designs: a report shows what
    # each design cost in LLM dollars.
    per_experiment = dict(query(study, "SELECT experiment_id, SUM(cost_usd) FROM llmcall GROUP BY 1"))
    assert None not in per_experiment and set(per_experiment) == {"e00001", "e00002", "e00003"}
    linked = query(study, "SELECT DISTINCT experiment_id FROM architecture WHERE origin = 'llm'")
    assert linked == [("e00001",)]
    made = discover("report", "-C", str(study))
    assert made.returncode == 0, made.stderr
    pages = [path.read_text() for path in (study / "report" / "designs").glob("*.md")]
    assert any(f"LLM ${per_experiment['e00001']:.4f}" in text for text in pages)

    shown = discover("show", "running_mean-e00001-r1", "-C", str(study))
    assert PLAN["motivation"] in shown.stdout  # what an LLM wrote is shown as text, not as markup

    prompts = [body["messages"][0]["content"] for path, body in openai_server.requests if "chat" in path]
    assert "softmax_attention" in prompts[0] and "class Mixer(torch.nn.Module)" in prompts[0]
    repair = next(prompt for prompt in prompts if "previous attempt failed" in prompt)
    assert "causality" in repair and "flip(1)" in repair


def test_ctrl_c_finishes_the_running_job_then_resume_continues(study):
    process = start("run", "-C", str(study), "--budget", "10m")
    try:
        wait_for(lambda: (study / "knowledge.db").exists() and len(finished_experiments(study)) >= 1, process)
        # A terminal's Ctrl-C reaches whichever thread the kernel picks. Python runs the handler in
        # the main thread only, so the hard case is a signal landing on another thread.
        threads = [int(tid) for tid in os.listdir(f"/proc/{process.pid}/task")]
        os.kill(next(tid for tid in threads if tid != process.pid), signal.SIGINT)
        out, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out  # drained, and the shell hears it was interrupted
    assert "interrupted: finishing the running jobs" in out
    assert "stopped because interrupted" in out
    assert query(study, "SELECT COUNT(*) FROM run WHERE status = 'running'")[0][0] == 0
    assert_ledger_exact(study)  # the job in flight was finished and charged, not abandoned
    paused = [line.split(":")[0] for line in out.splitlines() if "paused before its next job" in line]
    again = discover("run", "-C", str(study), "--resume", "--max-experiments", "0")
    assert again.returncode == 0, again.stdout + again.stderr
    for experiment in paused:  # continued at its last finished step, and finished
        assert f"resuming 1 unfinished experiment(s): {experiment}" in again.stdout
        assert f"{experiment} " in again.stdout.split("resuming")[1]


def test_doctor_checks_the_endpoint_and_its_models(tmp_path, openai_server, docker_backend):
    folder = tmp_path / "study"
    folder.mkdir()
    llm = f'proposer = "llm"\n[llm]\nbase_url = "{openai_server.base_url}"\ndefault_model = "scripted"\n'
    (folder / "discover.toml").write_text(llm)
    healthy = discover("doctor", "-C", str(folder))
    assert healthy.returncode == 0, healthy.stdout
    assert "serves scripted" in healthy.stdout and "docker" in healthy.stdout

    (folder / "discover.toml").write_text(llm.replace('"scripted"', '"gpt-9"'))
    missing = discover("doctor", "-C", str(folder))
    assert missing.returncode == 1 and "lacks model(s) gpt-9" in missing.stdout
    (folder / "discover.toml").write_text(llm + 'judge = true\nmodels = { judge = "judge-1" }\n')
    judge = discover("doctor", "-C", str(folder))  # the judge's model is checked too
    assert judge.returncode == 1 and "lacks model(s) judge-1" in judge.stdout

    (folder / "discover.toml").write_text(llm.replace(openai_server.base_url, "http://127.0.0.1:9/v1"))
    unreachable = discover("doctor", "-C", str(folder))
    assert unreachable.returncode == 1 and "APIConnectionError" in unreachable.stdout
    assert not (folder / "knowledge.db").exists()  # a preflight writes nothing
