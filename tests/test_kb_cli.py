"""`discover kb`, `discover export` and `discover import` as a user runs them."""

import json
import os

from .test_cli import assert_one_line_error, discover


def run_in(home, *args):
    """A command with its own DISCOVER_HOME, so the user-level knowledge base is the test's."""
    previous = os.environ.get("DISCOVER_HOME")
    os.environ["DISCOVER_HOME"] = str(home)
    try:
        return discover(*args)
    finally:
        if previous is None:
            del os.environ["DISCOVER_HOME"]
        else:
            os.environ["DISCOVER_HOME"] = previous


def test_add_then_search_the_user_knowledge_base(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Token shift\n\nMixing the previous token into the keys sharpens induction heads.\n")
    first = run_in(tmp_path, "kb", "add", str(notes))
    assert first.returncode == 0, first.stderr
    assert "1 added, 0 unchanged" in first.stdout
    assert "0 added, 1 unchanged" in run_in(tmp_path, "kb", "add", str(notes)).stdout
    assert (tmp_path / "knowledge.db").exists()

    found = run_in(tmp_path, "kb", "search", "previous token induction", "--json", "--k", "3")
    assert found.returncode == 0, found.stderr
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert hits[0]["title"] == "Token shift" and hits[0]["kind"] == "chunk"

    starter = run_in(tmp_path, "kb", "search", "delta rule", "--json")
    assert any("delta" in json.loads(line)["title"].lower() for line in starter.stdout.splitlines())
    table = run_in(tmp_path, "kb", "search", "previous token")
    assert "Token shift" in table.stdout


def test_export_then_import_into_another_database(tmp_path):
    source, target, out = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "all.jsonl"
    notes = tmp_path / "n.txt"
    notes.write_text("Gated slots\nA router picks one of four memories per token.\n")
    assert run_in(tmp_path, "kb", "add", str(notes), "--db", str(source)).returncode == 0
    exported = run_in(tmp_path, "export", str(out), "--db", str(source))
    assert exported.returncode == 0, exported.stderr
    imported = run_in(tmp_path, "import", str(out), "--db", str(target))
    assert imported.returncode == 0, imported.stderr
    assert "skipped" in imported.stdout
    found = run_in(tmp_path, "kb", "search", "router memories", "--db", str(target), "--json")
    assert json.loads(found.stdout.splitlines()[0])["title"] == "Gated slots"


def test_bad_knowledge_base_input_is_one_line(tmp_path):
    db = ("--db", str(tmp_path / "k.db"))
    assert_one_line_error(run_in(tmp_path, "kb", "add", str(tmp_path / "missing.md"), *db), "no such file")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "ok", "abstract": "quokkas"}\n{"title": 3}\n')
    assert_one_line_error(run_in(tmp_path, "kb", "add", str(bad), *db), "bad.jsonl:2")
    assert_one_line_error(run_in(tmp_path, "kb", "search", "x", "--kind", "papers", *db), "--kind takes")
    assert_one_line_error(run_in(tmp_path, "kb", "search", "x", "--verdict", "maybe", *db), "--verdict takes")
    mysql = run_in(tmp_path, "kb", "search", "x", "--db", "mysql://h/d")
    assert_one_line_error(mysql, "unsupported database")
    unknown_study = run_in(tmp_path, "export", str(tmp_path / "o.jsonl"), "--study", "nope", *db)
    assert_one_line_error(unknown_study, "no study")
    assert not (tmp_path / "o.jsonl").exists()
    assert_one_line_error(run_in(tmp_path, "import", str(bad), *db), "not a discover export")
    found = run_in(tmp_path, "kb", "search", "quokkas", "--json", *db)
    assert found.stdout.strip() == ""  # the bad file added nothing, not even its good first line
