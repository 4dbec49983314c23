"""What the researcher is shown of its own study so far, beside what the knowledge base retrieves:

    motif findings   the rule-based analyst's findings on motif changes, with their intervals
    designs tried    one line each: name, what it is, its one-seed screening fitness, its outcome
    duplicates       every plan of the study that repeated an earlier design, and what it repeated
    budget           device-hours left of the total, and how the experiments so far ended

Each list is bounded (the most relevant or most recent first, with a count of the rest), so a
large study's prompt keeps room for the answer. Everything is plain data for the template: the
words around it, and what it may be called, are the template's.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from discover.agents.checkpoints import duplicates, experiment_endings, experiment_outcomes
from discover.agents.proposers.grammar_search import genome_of
from discover.agents.verifications import VerificationSummary, verification_summaries
from discover.knowledge_base.schema import Architecture, Finding, Run

if TYPE_CHECKING:
    from discover.agents.context import StudyContext

MOTIF_FINDINGS = 12
TRIED = 25
DUPLICATES = 10
SUMMARY_CHARS = 160  # of a design's hypothesis, when it has no grammar motifs to list
REASON_CHARS = 150


def bounded(items: list[Any], limit: int) -> dict[str, Any]:
    """The first `limit` items, and how many were left out."""
    return {"shown": items[:limit], "more": max(0, len(items) - limit)}


def one_line(text: str, limit: int) -> str:
    line = re.sub(r"\s+", " ", text).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


# ----------------------------------------------------------------------------- motif findings


def motif_findings(study: StudyContext) -> dict[str, Any]:
    """The study's findings on motif changes (`analyst.motif_finding`): decisive ones first, then
    by the size of the effect."""
    with study.kb.reading() as session:
        rows = session.exec(select(Finding).where(Finding.study_id == study.study_id)).all()
    motif = [row for row in rows if "motif" in row.tags and row.effect_size is not None]
    motif.sort(key=lambda row: (row.verdict == "inconclusive", -abs(row.effect_size or 0.0), row.id))
    return bounded([motif_line(row) for row in motif], MOTIF_FINDINGS)


def motif_line(finding: Finding) -> dict[str, Any]:
    change = next((tag for tag in finding.tags if tag.startswith("change:")), "change:?:?")
    _, slot, values = change.split(":", 2)
    return {
        "id": finding.id, "change": f"{slot}: {values.replace('->', ' -> ')}", "verdict": finding.verdict,
        "effect": finding.effect_size, "low": finding.effect_low, "high": finding.effect_high,
        "confidence": finding.confidence,
    }  # fmt: skip


# ----------------------------------------------------------------------------- designs tried


def tried_designs(study: StudyContext) -> dict[str, Any]:
    """Every design the study proposed (baselines are shared, not the study's), the most recent
    first, one line each."""
    with study.kb.reading() as session:
        proposed = session.exec(select(Architecture).where(Architecture.study_id == study.study_id)).all()
    runs: dict[str, list[Run]] = defaultdict(list)
    names = {architecture.id: architecture.name for architecture in proposed}
    for architecture, run in study.kb.study_runs(study.study_id):
        runs[architecture.id].append(run)
        names[architecture.id] = architecture.name  # the baselines it trained, too
    verifications = {row.architecture_id: row for row in verification_summaries(study.kb, study.study_id)}
    newest = sorted(proposed, key=lambda a: (a.created_at, a.id), reverse=True)
    lines = [design_line(a, runs[a.id], verifications.get(a.id), names) for a in newest]
    return bounded(lines, TRIED) | {"total": len(lines)}


def design_line(
    architecture: Architecture,
    runs: list[Run],
    verification: VerificationSummary | None,
    names: dict[str, str],
) -> dict[str, Any]:
    screened = [run for run in runs if run.fidelity == "screen" and "recheck_of" not in run.result]
    succeeded = [
        run
        for run in screened
        if run.status == "succeeded" and run.fitness is not None and math.isfinite(run.fitness)
    ]
    fitnesses = [run.fitness for run in succeeded]
    return {
        "name": architecture.name,
        "summary": summary(architecture),
        "fitness": max(fitnesses) if fitnesses else None,
        "tasks": task_values(max(succeeded, key=lambda run: run.fitness or 0.0)) if succeeded else {},
        "outcome": outcome(screened, verification, names),
    }


def task_values(run: Run | None) -> dict[str, float]:
    """On a suite, the run's headline value on each task ("gains on noisy recall, loses on
    memorization"); empty for a run on one task."""
    parts = run.result.get("parts", {}) if run and run.result else {}
    return {task: part["value"] for task, part in parts.items()}


def summary(architecture: Architecture) -> str:
    """What the design is: its motifs for a grammar design, else its hypothesis (or motivation)."""
    genome = genome_of(architecture)
    if genome is not None:
        return genome.describe()
    return one_line(architecture.hypothesis or architecture.motivation or "not described", SUMMARY_CHARS)


def outcome(screened: list[Run], verification: VerificationSummary | None, names: dict[str, str]) -> str:
    """How far the design got, in a few words; only a verification speaks of a baseline."""
    if verification is not None:
        return verified(verification)
    last = screened[-1] if screened else None
    if last is None:
        return "not trained"
    if last.status == "succeeded":
        return "awaiting verification" if "awaiting_verification" in last.result else "screened"
    if last.status == "running":
        return "training now"
    if "duplicate_of" in last.result:
        return f"duplicate of {names.get(last.result['duplicate_of'], 'an earlier design')}, not trained"
    reason = one_line(last.failure_reason or "no reason recorded", REASON_CHARS)
    return f"rejected by its checks: {reason}" if last.status == "rejected" else f"training failed: {reason}"


def verified(verification: VerificationSummary) -> str:
    if verification.status != "complete":
        return f"verification against {verification.baseline} inconclusive"
    verdict = "beats" if verification.beats else "not shown better than"
    q = f"q = {verification.q_value:.3g}, " if verification.q_value is not None else ""
    replication = f"; replication: {verification.replication}" if verification.beats else ""
    return (
        f"verified at full fidelity: {verdict} {verification.baseline} "
        f"({q}{len(verification.seeds)} paired seeds){replication}"
    )


# ----------------------------------------------------------------------------- duplicates, budget


def study_duplicates(states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The study's plans that repeated an earlier design (`checkpoints.duplicates`), latest first."""
    return bounded([one_line(line, 2 * REASON_CHARS) for line in reversed(duplicates(states))], DUPLICATES)


def budget_left(study: StudyContext, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Device-hours of the budget, and the study's experiments so far (this one included) by outcome."""
    ledger = study.ledger
    return {
        "total_hours": ledger.total.device_hours, "spent_hours": ledger.spent / 3600,
        "reserved_hours": ledger.reserved / 3600, "left_hours": max(0.0, ledger.left) / 3600,
        "experiments": len(states), "outcomes": experiment_outcomes(experiment_endings(states)),
    }  # fmt: skip
