"""A study's verifications as plain summaries, each with its replications: what `status`, the
leaderboard and the report read (`claims.py` makes them)."""

from __future__ import annotations

from pydantic import BaseModel, computed_field

from discover.knowledge_base.schema import Architecture
from discover.knowledge_base.store import KnowledgeBase


class ReplicationSummary(BaseModel):
    status: str  # "complete", or "inconclusive" when a seed failed
    reason: str | None
    seeds: list[int]
    values: list[float | None]
    baseline_values: list[float | None]
    difference: float | None
    p_value: float | None
    held: bool  # the gain is significant at alpha again, on fresh seeds and held-out data


class VerificationSummary(BaseModel):
    id: str
    architecture_id: str
    design: str
    baseline: str
    status: str  # "complete", or "inconclusive" when a seed failed
    reason: str | None
    seeds: list[int]
    values: list[float | None]
    baseline_values: list[float | None]
    difference: float | None  # mean per-seed gain, larger is better
    p_value: float | None
    q_value: float | None  # Benjamini-Hochberg over the study's complete verifications
    alpha: float
    beats: bool
    replications: list[ReplicationSummary]  # oldest first

    @computed_field  # type: ignore[prop-decorator]
    @property
    def replication(self) -> str:
        """A claim's replication status in a few words ("" for a verification that made no claim)."""
        if not self.beats:
            return ""
        if not self.replications:
            return "not replicated"
        last = self.replications[-1]
        return "held" if last.held else ("inconclusive" if last.status != "complete" else "did not hold")


def verification_summaries(kb: KnowledgeBase, study_id: str) -> list[VerificationSummary]:
    """The study's verifications, oldest first, each with its replications."""
    rows = kb.study_verifications(study_id)
    names = {}
    summaries = []
    for row in rows:
        if row.replicates is not None:
            continue
        if row.architecture_id not in names:
            design = kb.get(Architecture, row.architecture_id)
            names[row.architecture_id] = design.name if design else row.architecture_id
        replications = [
            ReplicationSummary(
                held=again.beats, **again.model_dump(include=set(ReplicationSummary.model_fields) - {"held"})
            )
            for again in rows
            if again.replicates == row.id
        ]
        fields = row.model_dump(include=set(VerificationSummary.model_fields) - {"design", "replications"})
        summaries.append(
            VerificationSummary(design=names[row.architecture_id], replications=replications, **fields)
        )
    return summaries
