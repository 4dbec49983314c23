"""The rule-based analyst: after each offline experiment, the typed finding it adds or revises.

- A child that differs from its parent in one motif: the effect of that change on screening
  fitness, pooled over every parent->child pair in the study that made the same change (paired
  differences, their mean, n, and from two pairs a t-interval at 1 - 2 alpha). One finding per
  change, revised as pairs accumulate. "supports" when the interval lies above zero, "refutes"
  when below, "inconclusive" otherwise (including a single pair, which has no interval).
- A run that failed: the failure, as a negative finding.
- Anything else adds nothing: a design's own one-seed screening result is a measurement kept with
  its run, never a finding (only a verification makes a claim).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from discover.agents.context import StudyContext
from discover.agents.grammar import difference
from discover.agents.proposers.grammar_search import genome_of
from discover.agents.statistics import compare, interval_level
from discover.knowledge_base.schema import Architecture, Finding, Run


@dataclass(frozen=True)
class Pair:
    change: tuple[str, object, object]  # (slot, parent's motif, child's motif)
    delta: float  # child's screening fitness minus the parent's
    run_ids: tuple[str, str]  # (parent's run, child's run)


def motif_pairs(screened: list[tuple[Architecture, Run]]) -> list[Pair]:
    """Every parent->child pair of grammar designs, both screened, differing in exactly one motif."""
    best: dict[str, tuple[Architecture, Run]] = {}
    for architecture, run in screened:
        usable = run.status == "succeeded" and run.fitness is not None and math.isfinite(run.fitness)
        if usable and (architecture.id not in best or run.fitness > best[architecture.id][1].fitness):
            best[architecture.id] = (architecture, run)
    pairs = []
    for child, child_run in best.values():
        if not child.parent_ids or child.parent_ids[0] not in best:
            continue
        parent, parent_run = best[child.parent_ids[0]]
        genomes = genome_of(parent), genome_of(child)
        if genomes[0] is None or genomes[1] is None:
            continue
        changes = difference(*genomes)
        if len(changes) != 1:
            continue
        ((slot, (before, after)),) = changes.items()
        pairs.append(
            Pair((slot, before, after), child_run.fitness - parent_run.fitness, (parent_run.id, child_run.id))
        )
    return pairs


def analyze(study: StudyContext, architecture_id: str, run: Run | None) -> Finding | None:
    """The finding one experiment adds or revises (its screening run is `run`; None: it never
    trained): its failure, or the pooled effect of the motif change it made. None otherwise: a
    design's own one-seed screening result is a measurement, kept with its run, not a finding."""
    architecture = study.kb.get(Architecture, architecture_id)
    assert architecture is not None
    common = {"task": study.task.name, "study_id": study.study_id}
    if run is None or run.status != "succeeded":
        reason = (run.failure_reason if run else None) or "it was not trained"
        return study.kb.add_finding(
            f"{architecture.name} failed on {study.task.name}: {reason}", "refutes",
            evidence_run_ids=[run.id] if run else [], tags=["failure"], **common,
        )  # fmt: skip
    pairs = motif_pairs(study.kb.study_runs(study.study_id, fidelity="screen"))
    mine = [pair for pair in pairs if pair.run_ids[1] == run.id]
    if not mine:
        return None
    change = mine[0].change
    same = [pair for pair in pairs if pair.change == change]
    fields = motif_finding(study, change, same)
    tag = change_tag(change)
    existing = study.kb.find_finding(study.study_id, tag)
    if existing is None:
        return study.kb.add_finding(**fields, **common)
    return study.kb.revise_finding(existing.id, **fields)


def change_tag(change: tuple[str, object, object]) -> str:
    """The tag that names one motif change: its finding is found and revised by it."""
    slot, before, after = change
    return f"change:{slot}:{before}->{after}"


def motif_finding(study: StudyContext, change: tuple[str, object, object], pairs: list[Pair]) -> dict:
    """The finding's fields for a motif change over every parent-child pair that made it so far:
    the mean paired difference in screening fitness (child minus parent), and from two pairs on its
    interval and one-sided p-value (`compare`, paired: each child against its own parent)."""
    slot, before, after = change
    alpha = study.config.promotion.alpha
    children = [pair.delta for pair in pairs]
    mean = sum(children) / len(children)
    interval, confidence = None, None
    if len(pairs) < 2:
        verdict, spread = "inconclusive", "one pair: no interval yet"
    else:
        result = compare(children, [0.0] * len(children), paired=True, alpha=alpha)
        interval, confidence = result.interval, interval_level(alpha)
        verdict = "supports" if interval[0] > 0 else "refutes" if interval[1] < 0 else "inconclusive"
        spread = (
            f"{confidence:.0%} interval [{interval[0]:+.3f}, {interval[1]:+.3f}], one-sided p = "
            f"{result.p_value:.3g}"
        )
    statement = (
        f"Changing {slot} from {before} to {after} moves screening fitness on {study.task.name} by "
        f"{mean:+.3f} ({spread}) over n = {len(pairs)} parent-child pair{'s' if len(pairs) > 1 else ''} "
        "(one screening seed each; a finding about the change, not a claim about any design)."
    )
    return {
        "statement": statement, "verdict": verdict,
        "evidence_run_ids": sorted({run_id for pair in pairs for run_id in pair.run_ids}),
        "effect_size": mean, "effect_interval": interval, "confidence": confidence,
        "tags": ["motif", slot, f"{slot}={after}", change_tag(change)],
    }  # fmt: skip
