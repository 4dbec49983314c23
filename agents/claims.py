"""How a study decides and records a claim: "design D beats baseline B on this task".

A verification trains D and B at full fidelity on the same seeds. Every seed must succeed on both
sides, else the verification is inconclusive and says which seed failed. Otherwise `compare` (a
paired one-sided test, `statistics.py`) gives a p-value, and Benjamini-Hochberg over every
complete verification of the study gives each a q-value, recomputed whenever one is added: D beats
B only when its q-value is at most the study's alpha. Nothing else anywhere in discover may call a
design better than a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

from discover.agents.context import StudyContext
from discover.agents.statistics import compare, interval_level, q_values
from discover.knowledge_base.schema import Architecture, Finding, Verification


@dataclass(frozen=True)
class SeedRuns:
    """One side of a verification: its metric per seed, and why any seed has none."""

    values: dict[int, float]
    failures: dict[int, str]


def decide(
    study: StudyContext, architecture: Architecture, baseline: str, seeds: list[int], design: SeedRuns,
    reference: SeedRuns, replicates: Verification | None = None, heldout_draw: int = 0,
) -> Verification:  # fmt: skip
    """Test the design against the baseline on `seeds`, store the verification, and refresh the
    study's q-values (so the returned row's `beats` reflects every verification so far). A
    replication of `replicates` is decided by its own test at alpha: it tests one claim already
    made, so it is not one more discovery for the false-discovery control."""
    alpha = study.config.promotion.alpha
    record = Verification(
        study_id=study.study_id, architecture_id=architecture.id, baseline=baseline, task=study.task.name,
        seeds=seeds, values=[design.values.get(seed) for seed in seeds],
        baseline_values=[reference.values.get(seed) for seed in seeds], status="inconclusive", alpha=alpha,
        replicates=replicates.id if replicates else None, heldout_draw=heldout_draw,
    )  # fmt: skip
    failed = [f"{name} seed {seed}: {side.failures.get(seed, 'no result')}"
              for name, side in ((architecture.name, design), (baseline, reference))
              for seed in seeds if seed not in side.values]  # fmt: skip
    if failed:
        record.reason = "a seed failed, so nothing was tested: " + "; ".join(failed)[:1000]
    else:
        sign = 1.0 if study.task.higher_is_better else -1.0  # oriented: larger is better
        result = compare(
            [sign * design.values[seed] for seed in seeds],
            [sign * reference.values[seed] for seed in seeds],
            paired=True, alpha=alpha,
        )  # fmt: skip
        record.status = "complete"
        record.difference, record.p_value = result.difference, result.p_value
        record.interval_low, record.interval_high = result.interval
        if replicates is not None:
            record.beats = result.beats
    study.kb.add_verification(record)
    refresh_q_values(study)
    decided = study.kb.get(Verification, record.id)  # with its q-value
    assert decided is not None
    return decided


def refresh_q_values(study: StudyContext) -> None:
    """Benjamini-Hochberg over the study's complete verifications (not their replications), stored
    on each."""
    complete = [
        row
        for row in study.kb.study_verifications(study.study_id)
        if row.status == "complete" and row.replicates is None
    ]
    adjusted = q_values([row.p_value for row in complete])  # type: ignore[misc]
    study.kb.set_q_values({
        row.id: (q, q <= row.alpha and (row.difference or 0.0) > 0)
        for row, q in zip(complete, adjusted, strict=True)
    })  # fmt: skip


def record_finding(study: StudyContext, architecture: Architecture, verification: Verification) -> Finding:
    """The verification as a finding, for the analyst and later researchers' prompts."""
    metric, name, baseline = study.task.metric, architecture.name, verification.baseline
    seeds = verification.seeds
    if verification.status != "complete":
        statement = (
            f"The verification of {name} against {baseline} on {study.task.name} is inconclusive: "
            f"{verification.reason}"
        )
        return study.kb.add_finding(
            statement, "inconclusive", task=study.task.name, tags=["verification"], study_id=study.study_id
        )
    if verification.beats:
        verdict, claim = "supports", f"beats {baseline}"
    elif (verification.interval_high or 0.0) < 0:
        verdict, claim = "refutes", f"is worse than {baseline}"
    else:
        verdict, claim = "inconclusive", f"is not shown to beat {baseline}"
    interval = (verification.interval_low, verification.interval_high)
    if verification.replicates is None:
        where = f"At full fidelity on seeds {seeds}"
        decided = (
            f"q = {verification.q_value:.3g} (Benjamini-Hochberg over the study's verifications, alpha "
            f"{verification.alpha:g})"
        )
    else:
        held = "held" if verification.beats else "did not hold"
        where = f"Replicated on fresh seeds {seeds} and a fresh held-out set (the claim {held})"
        decided = f"alpha {verification.alpha:g} (a replication is its own test)"
    statement = (
        f"{where}, {name} {claim} on {study.task.name}: mean per-seed gain in "
        f"{metric} {verification.difference:+.4f} ({interval_level(verification.alpha):.0%} interval "
        f"[{interval[0]:+.4f}, {interval[1]:+.4f}]), paired t-test p = {verification.p_value:.3g}, "
        f"{decided}; {name}: {_values(verification.values)}, {baseline}: "
        f"{_values(verification.baseline_values)}."
    )
    runs = [
        run.id
        for arch, run in study.kb.study_runs(study.study_id, fidelity="full")
        if run.seed in seeds
        and (arch.id == architecture.id or (arch.origin == "baseline" and arch.name == baseline))
    ]
    return study.kb.add_finding(
        statement, verdict, evidence_run_ids=runs, effect_size=verification.difference,
        effect_interval=interval, confidence=interval_level(verification.alpha), task=study.task.name,
        tags=["verification"], study_id=study.study_id,
    )  # fmt: skip


def _values(values: list[float | None]) -> str:
    return ", ".join("failed" if value is None else f"{value:.4f}" for value in values)
