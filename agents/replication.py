"""Replication: a claim tested again before anyone builds on it.

A replication trains the design and the baseline of a verification again at full fidelity, on as
many seeds as the verification had but seeds no earlier run of the study used, scored on a fresh
held-out set (`Sandbox.heldout_seed_of`). `claims.decide` records it as a verification that
`replicates` the original and decides it by its own paired test at the study's alpha: the claim
held or it did not. It starts only when the budget covers every run it needs.

`discover replicate DESIGN` replicates a design's claim on demand; with `promotion.replicate` a
study replicates every claim as soon as it is made, when the budget allows.
"""

from __future__ import annotations

from discover.agents import claims
from discover.agents.context import StudyContext
from discover.agents.record import StudyError
from discover.agents.runs import (
    baseline_runs,
    finished_runs,
    seed_runs,
    train_and_record,
    vet_architecture,
)
from discover.knowledge_base.schema import Architecture, Verification

SEED_BASE = 2000  # replication seeds start here past the study's seed: no verification or recheck uses them
FIRST_DRAW = 2  # held-out draws: 0 the study's own, 1 the too-good recheck's, then one per replication


class NotAffordable(StudyError):
    """The budget left cannot cover the replication's runs."""


def claim_of(study: StudyContext, architecture: Architecture) -> Verification:
    """The design's latest verification (not a replication): the claim a replication tests."""
    original = [
        row
        for row in study.kb.study_verifications(study.study_id)
        if row.architecture_id == architecture.id and row.replicates is None
    ]
    if not original:
        raise StudyError(f"{architecture.name} has no verification: only a verified design has a claim")
    if original[-1].status != "complete":
        raise StudyError(f"{architecture.name}'s verification was inconclusive: it made no claim")
    return original[-1]


def replications_of(study: StudyContext, verification: Verification) -> list[Verification]:
    return [row for row in study.kb.study_verifications(study.study_id) if row.replicates == verification.id]


def replicate(study: StudyContext, architecture: Architecture) -> Verification:
    """Replicate the design's claim (`claim_of`) once more; NotAffordable when the budget cannot
    cover its runs, StudyError when the design has no claim or its baseline is gone."""
    original = claim_of(study, architecture)
    index = len(replications_of(study, original))
    count = len(original.seeds)
    start = study.config.seed + SEED_BASE + index * count
    seeds = list(range(start, start + count))
    draw = FIRST_DRAW + index
    baseline = study.kb.find_design(study.study_id, original.baseline)
    if baseline is None:
        raise StudyError(f"{architecture.name} was verified against {original.baseline}, not in this study")
    done = finished_runs(study, architecture, seeds, draw)
    missing = 2 * count - len(done) - len(finished_runs(study, baseline, seeds, draw))
    if missing and not study.affordable("full", with_check=False, runs=missing):
        raise NotAffordable(
            f"the budget left cannot cover the {missing} full-fidelity runs replicating {architecture.name}"
        )
    labels = {"replication_of": original.id}
    reference = baseline_runs(study, baseline, seeds, draw, labels)
    candidate = vet_architecture(study, architecture)
    for seed in seeds:
        if seed not in done:
            run = train_and_record(study, architecture, "full", seed, candidate, draw, labels)
            if run is None:
                raise NotAffordable(f"the budget ran out while replicating {architecture.name}")
            done[seed] = run
    design, name = seed_runs(done), original.baseline
    return claims.decide(study, architecture, name, seeds, design, reference, original, heldout_draw=draw)
