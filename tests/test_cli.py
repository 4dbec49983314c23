"""The `discover` command as a user runs it: happy paths, and bad input as one line, no traceback."""

import json

from .conftest import CANDIDATES, discover


def assert_one_line_error(run, words):
    assert run.returncode != 0
    assert "Traceback" not in run.stderr + run.stdout
    assert words in run.stderr and len(run.stderr.strip().splitlines()) <= 2, run.stderr


def test_check_a_builtin_baseline():
    run = discover("check", "deltanet")
    assert run.returncode == 0, run.stderr
    assert "causality" in run.stdout and "FAIL" not in run.stdout


def test_check_json_names_the_failed_probe():
    run = discover("check", str(CANDIDATES / "reads_future.py"), "--json")
    assert run.returncode == 1
    verdict = json.loads(run.stdout)
    assert not verdict["passed"]
    assert [p["name"] for p in verdict["probes"] if not p["passed"]] == ["causality"]


def test_check_syntax_error_is_one_line():
    run = discover("check", str(CANDIDATES / "syntax_error.py"))
    assert_one_line_error(run, "static_check: line 3: syntax error")


def test_bad_inputs_are_one_line_errors(tmp_path):
    assert_one_line_error(discover("check", "no_such_baseline"), "no file or built-in baseline")
    assert_one_line_error(discover("check", "missing.py"), "does not exist")
    assert_one_line_error(discover("check", "deltanet", "--task", "vision"), "unknown task")
    assert_one_line_error(discover("train", "deltanet", "--set", "steps"), "--set takes key=value")
    assert_one_line_error(discover("train", "deltanet", "--set", "lr=fast"), "bad setting 'lr'")
    assert_one_line_error(
        discover("train", "deltanet", "--task", "lm", "--preset", "huge"), "unknown preset 'huge'"
    )
    corpus = ("--task", "lm", "--set", f"corpus={tmp_path / 'nowhere'}")
    assert_one_line_error(discover("train", "deltanet", *corpus, cwd=tmp_path), "does not exist")
    assert not (tmp_path / "runs").exists()  # nothing written for bad input


def test_train_refuses_a_candidate_that_fails_its_probes(tmp_path):
    run = discover("train", str(CANDIDATES / "mixes_batch.py"), cwd=tmp_path)
    assert_one_line_error(run, "batch_independence")
    assert not (tmp_path / "runs").exists()


def test_train_writes_a_run_folder(tmp_path):
    out = tmp_path / "run"
    settings = ["--set", "steps=20", "--set", "log_every=10", "--set", "test_examples=64"]
    run = discover("train", "gla", *settings, "--out", str(out), "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["candidate"] == "gla" and result["steps"] == 20
    assert json.loads((out / "result.json").read_text()) == result
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
