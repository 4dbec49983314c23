"""The rule-based analyst: after each offline experiment, a typed finding with its statistics.

- A child that differs from its parent in one motif: the effect of that change on screening
  fitness, pooled over every parent->child pair in the study that made the same change, with a
  bootstrap interval at 1 - 2 alpha. "supports" when the interval lies above zero, "refutes" when
  below, "inconclusive" otherwise (including a single pair, which has no interval).
- A design without a grammar parent: its one-seed screening result beside the best baseline's,
  recorded as "inconclusive": one run is a measurement, never a claim (only a verification is).
- A run that failed: the failure, as a negative finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from discover.agents.context import StudyContext
from discover.agents.grammar import difference
from discover.agents.proposers.grammar_search import genome_by_name
from discover.agents.statistics import interval_level, mean_interval
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
        genomes = genome_by_name().get(parent.name), genome_by_name().get(child.name)
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


def analyze(
    study: StudyContext, architecture_id: str, run: Run | None, reference_name: str, reference_value: float
) -> Finding:
    """The finding for one experiment whose screening run is `run` (None: it never trained)."""
    task = study.task.name
    architecture = study.kb.get(Architecture, architecture_id)
    assert architecture is not None
    common = {"task": task, "study_id": study.study_id}
    if run is None or run.status != "succeeded":
        reason = (run.failure_reason if run else None) or "it was not trained"
        return study.kb.add_finding(
            f"{architecture.name} failed on {task}: {reason}", "refutes",
            evidence_run_ids=[run.id] if run else [], tags=["failure"], **common,
        )  # fmt: skip

    screened = study.kb.study_runs(study.study_id, fidelity="screen")
    pairs = motif_pairs(screened)
    mine = [pair for pair in pairs if pair.run_ids[1] == run.id]
    if mine:
        change = mine[0].change
        same = [pair for pair in pairs if pair.change == change]
        deltas = [pair.delta for pair in same]
        mean = sum(deltas) / len(deltas)
        confidence = interval_level(study.config.promotion.alpha)
        interval = mean_interval(deltas, confidence, seed=study.config.seed)
        slot, before, after = change
        if interval is None:
            verdict, spread = "inconclusive", "no interval yet"
        else:
            verdict = "supports" if interval[0] > 0 else "refutes" if interval[1] < 0 else "inconclusive"
            spread = f"{confidence:.0%} CI [{interval[0]:+.3f}, {interval[1]:+.3f}]"
        statement = (
            f"Changing {slot} from {before} to {after} moves screening fitness on {task} by {mean:+.3f} "
            f"({spread}) over {len(deltas)} parent-child pair{'s' if len(deltas) > 1 else ''}; "
            f"this time {architecture.name} scored {run.fitness:.3f}."
        )
        evidence = sorted({run_id for pair in same for run_id in pair.run_ids})
        return study.kb.add_finding(
            statement, verdict, evidence_run_ids=evidence, effect_size=mean, effect_interval=interval,
            confidence=confidence if interval else None, tags=["motif", slot, f"{slot}={after}"], **common,
        )  # fmt: skip

    value = run.result.get("value", math.nan)
    metric = run.result.get("metric", "metric")
    statement = (
        f"{architecture.name} reached {metric} {value:.4f} on {task} in a one-seed screening run; the "
        f"best baseline {reference_name} screened at {reference_value:.4f}. One seed is not evidence "
        "of a difference: only a verification can claim one."
    )
    return study.kb.add_finding(
        statement, "inconclusive", evidence_run_ids=[run.id],
        effect_size=value - reference_value, tags=["screen", "baseline"], **common,
    )  # fmt: skip
