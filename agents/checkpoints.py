"""A study's experiments as its checkpoints record them (`checkpoints.db`, one LangGraph thread per
experiment): how each ended, and the plans that repeated earlier designs, which leave no design in
the knowledge base. Read through a connection of its own, so `status`, the report, the live view
and a running study's prompts can read while the study writes (the saver keeps SQLite in WAL mode).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

CHECKPOINTS = "checkpoints.db"

# How experiments ended (graph.ENDINGS), as status, the report, the live view and the researcher
# count them: those that trained, and the three ways an experiment ends with nothing to train.
# An ending not named here (out of budget, unfinished, ...) is counted under its own name.
OUTCOME_OF = {
    "screened": "trained",
    "verified": "trained",
    "awaiting_verification": "trained",
    "failed": "training_failed",
    "duplicate": "duplicate",
    "no_proposal": "no_plan",
    "no_code": "no_code",
    "rejected": "rejected",
}
HEADLINE_OUTCOMES = ("trained", "duplicate", "no_code", "rejected")  # always counted, even at 0


def experiment_states(folder: Path) -> dict[str, dict[str, Any]]:
    """Each experiment's last checkpointed state, by experiment id, oldest experiment first."""
    path = folder / CHECKPOINTS
    if not path.exists():
        return {}
    # Not read-only: the saver sets up its tables on first use (a no-op on an existing study).
    connection = sqlite3.connect(path, check_same_thread=False)
    try:
        if not _has_checkpoints(connection):
            return {}
        # One query names the threads; listing the checkpoints would decode every one of them.
        threads = [row[0] for row in connection.execute("SELECT DISTINCT thread_id FROM checkpoints")]
        saver = SqliteSaver(connection)
        states = {}
        for thread in sorted(threads):
            last = saver.get_tuple({"configurable": {"thread_id": thread}})
            states[thread] = dict(last.checkpoint["channel_values"]) if last else {}
        return states
    finally:
        connection.close()


def _has_checkpoints(connection: sqlite3.Connection) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'"
    return connection.execute(query).fetchone() is not None


def ending(state: dict[str, Any]) -> str:
    """How the experiment ended (graph.ENDINGS), or "unfinished" while it runs or waits for --resume."""
    return state.get("status", "failed") if state.get("ended") else "unfinished"


def experiment_endings(states: dict[str, dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(ending(state) for state in states.values()))


def experiment_outcomes(endings: dict[str, int]) -> dict[str, int]:
    """The endings grouped as `OUTCOME_OF` says: the headline outcomes first (0 when none), then
    any other ending under its own name."""
    outcomes = dict.fromkeys(HEADLINE_OUTCOMES, 0)
    for end, count in sorted(endings.items()):
        outcome = OUTCOME_OF.get(end, end)
        outcomes[outcome] = outcomes.get(outcome, 0) + count
    return outcomes


def describe_outcomes(outcomes: dict[str, int]) -> str:
    """One phrase for every view, e.g. "3 trained, 2 duplicate, 0 no code, 1 rejected, 1 unfinished"."""
    return ", ".join(f"{count} {outcome.replace('_', ' ')}" for outcome, count in outcomes.items())


def duplicates(states: dict[str, dict[str, Any]]) -> list[str]:
    """Every plan of the study that repeated an earlier design, oldest first, each as "plan: what it
    repeated": plans the novelty check sent back or ended on, and designs whose probes found them
    computing the same function as an earlier one."""
    found = []
    for state in states.values():
        found += state.get("duplicates", [])
        if state.get("duplicate_of") and state.get("proposal"):
            found.append(f"{state['proposal'].get('name', '?')}: {state.get('reason', 'a duplicate')}")
    return found
