"""`discover baseline add|list`: a user's own mixer, probed in the sandbox, stored, and then used by a
study as its reference. Bad files are refused with one line and nothing stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import CANDIDATES, discover
from tests.test_study import TINY_STUDY


def stored_baselines(folder: Path) -> list[str]:
    if not (folder / "knowledge.db").exists():
        return []
    with sqlite3.connect(folder / "knowledge.db") as connection:
        return [name for (name,) in connection.execute("SELECT name FROM baseline WHERE source != 'builtin'")]


def test_a_users_baseline_is_probed_stored_listed_and_becomes_the_reference(tmp_path, docker_backend):
    study = tmp_path / "study"
    study.mkdir()
    mine = tmp_path / "my_conv.py"
    mine.write_text((CANDIDATES / "weak_short_conv.py").read_text())
    added = discover(
        "baseline", "add", str(mine), "--name", "my_conv", "-C", str(study), "--sandbox", "docker"
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert "added baseline my_conv" in added.stdout
    assert stored_baselines(study) == ["my_conv"]

    listed = discover("baseline", "list", "-C", str(study))
    assert listed.returncode == 0
    assert "my_conv " in listed.stdout and "my_conv.py" in listed.stdout
    assert "softmax_attention" in listed.stdout  # the built-ins are listed too

    # A study that names it trains it as its only baseline: every fitness is measured against it.
    (study / "discover.toml").write_text(TINY_STUDY.replace('["softmax_attention"]', '["my_conv"]'))
    ran = discover("run", "-C", str(study), "--budget", "1m", "--max-experiments", "1", "--sandbox", "docker")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "training baseline my_conv" in ran.stdout
    with sqlite3.connect(study / "knowledge.db") as connection:
        (fitness,) = connection.execute(
            "SELECT r.fitness FROM run r JOIN architecture a ON a.id = r.architecture_id"
            " WHERE a.name = 'my_conv' AND r.fidelity = 'screen' AND r.status = 'succeeded'"
        ).fetchone()
    assert abs(fitness - 0.5) < 0.2  # the reference scores parity with itself (efficiency aside)


def test_bad_baselines_are_refused_with_one_line_and_nothing_stored(tmp_path, docker_backend):
    study = tmp_path / "study"
    study.mkdir()
    cases = [
        (("missing.py", "--name", "x"), 2, "does not exist"),
        ((str(CANDIDATES / "weak_short_conv.py"), "--name", "bad name!"), 2, "letters, digits"),
        ((str(CANDIDATES / "reads_future.py"), "--name", "cheater"), 1, "causality"),
        ((str(CANDIDATES / "syntax_error.py"), "--name", "broken"), 1, "syntax error"),
    ]
    for args, code, message in cases:
        done = discover("baseline", "add", *args, "-C", str(study), "--sandbox", "docker")
        assert done.returncode == code, (args, done.stdout + done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert stored_baselines(study) == []

    first = discover(
        "baseline", "add", str(CANDIDATES / "weak_short_conv.py"), "--name", "mine", "-C", str(study),
        "--sandbox", "docker",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = discover(
        "baseline", "add", str(CANDIDATES / "weak_short_conv.py"), "--name", "mine", "-C", str(study),
        "--sandbox", "docker",
    )  # fmt: skip
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr
    assert stored_baselines(study) == ["mine"]
