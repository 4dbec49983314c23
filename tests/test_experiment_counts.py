"""How a study's experiments ended, counted the same way by `discover status`, the report and the
live view: trained, duplicate, no code and rejected (and any other ending by its name), read from
the experiments' checkpoints, since a duplicate or an answer without code leaves no design behind.
And a design's hypothesis, stored with it, on its pages. Records are written by hand: nothing trains."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from rich.console import Console

from discover.agents.graph import ExperimentState
from discover.agents.record import RECORD_FILE, StudyRecord
from discover.agents.status import study_status
from discover.progress import status_panel
from discover.report.site import build_report
from tests.conftest import discover

# Eight experiments: two trained (one of them also verified), two duplicates (a repeated plan, and
# a design computing an earlier one's function), a coder without usable code, a design its probes
# rejected, a training run that failed, and one still running.
ENDED = {
    "e00001": {"status": "screened", "ended": True},
    "e00002": {"status": "verified", "ended": True},
    "e00003": {"status": "duplicate", "ended": True,
               "duplicates": ["idea-e00003: the same idea as idea-e00001"]},
    "e00004": {"status": "duplicate", "ended": True, "duplicate_of": "a1",
               "proposal": {"name": "twin-e00004"},
               "reason": "computes the same function as idea-e00001 (hash 0f3a); not trained again"},
    "e00005": {"status": "no_code", "ended": True},
    "e00006": {"status": "rejected", "ended": True},
    "e00007": {"status": "failed", "ended": True},
    "e00008": {},  # not ended: still running, or waiting for --resume
}  # fmt: skip
COUNTS = "2 trained, 2 duplicate, 1 no code, 1 rejected, 1 training failed, 1 unfinished"
HOSTILE_HYPOTHESIS = "<script>window.pwned = 1</script> **gating** helps [x](javascript:alert(1))"


def write_experiments(folder: Path, states: dict[str, dict]) -> None:
    """Checkpoint each experiment's last state as the study's graph would (`checkpoints.db`)."""
    graph = StateGraph(ExperimentState)
    graph.add_node("record", lambda state: {})
    graph.add_edge(START, "record")
    graph.add_edge("record", END)
    with closing(sqlite3.connect(folder / "checkpoints.db", check_same_thread=False)) as connection:
        compiled = graph.compile(checkpointer=SqliteSaver(connection))
        for thread, values in states.items():
            compiled.invoke({"experiment_id": thread, **values}, {"configurable": {"thread_id": thread}})


@pytest.fixture
def counted(bare_study) -> Path:
    """A bare study with the experiments of ENDED checkpointed, its record on file, and one design
    with a hypothesis an LLM could have written."""
    folder = bare_study.folder
    write_experiments(folder, ENDED)
    record = StudyRecord(
        study_id=bare_study.study_id, heldout_seed=1, created_at="2026-12-06T00:00:00",
        budget=bare_study.config.budget, task="mqar",
    )  # fmt: skip
    (folder / RECORD_FILE).write_text(record.model_dump_json())
    bare_study.kb.add_architecture(
        "idea-e00006", "class Mixer: ...", "llm", "gates decide what to keep", study_id=bare_study.study_id,
        experiment_id="e00006", hypothesis=HOSTILE_HYPOTHESIS,
    )  # fmt: skip
    return folder


def test_status_counts_duplicate_no_code_rejected_and_trained_experiments(counted):
    shown = discover("status", "-C", str(counted), "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["outcomes"] == {
        "trained": 2, "duplicate": 2, "no_code": 1, "rejected": 1, "training_failed": 1, "unfinished": 1,
    }  # fmt: skip
    assert status["experiments"]["verified"] == 1 and status["experiments"]["screened"] == 1
    assert f"experiments: {COUNTS}" in discover("status", "-C", str(counted)).stdout


def test_a_study_without_experiments_counts_each_outcome_as_zero(bare_study):
    record = StudyRecord(study_id=bare_study.study_id, heldout_seed=1, created_at="2026-12-06T00:00:00")
    (bare_study.folder / RECORD_FILE).write_text(record.model_dump_json())
    outcomes = study_status(bare_study.folder).outcomes
    assert outcomes == {"trained": 0, "duplicate": 0, "no_code": 0, "rejected": 0}


def test_the_live_view_counts_how_experiments_ended(counted):
    console = Console(record=True, width=200)
    console.print(status_panel(study_status(counted), eta_s=None))
    assert f"ended        {COUNTS}" in console.export_text()


def test_the_report_counts_how_experiments_ended_and_shows_each_hypothesis_as_text(counted):
    index = build_report(counted)
    assert f'Experiments: <span class="outcomes">{COUNTS}</span>.' in index.read_text()

    (design,) = [path for path in (index.parent / "designs").glob("*.html")]
    page = design.read_text()
    assert '<div class="hypothesis">&lt;script&gt;window.pwned = 1&lt;/script&gt; **gating** helps' in page
    assert "<script>" not in page
    markdown = design.with_suffix(".md").read_text()
    assert r"Hypothesis: &lt;script&gt;window.pwned = 1&lt;/script&gt; \*\*gating\*\* helps \[x\]" in markdown
    assert "Motivation: gates decide what to keep" in markdown
