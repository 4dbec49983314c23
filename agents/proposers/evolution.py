"""Regularized evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
Search", 2019): the population is the most recent `population` screened designs; a parent is the
fittest of `tournament` members drawn at random; the child changes one motif. Ageing out the
oldest, rather than the worst, keeps a lucky early score from ruling the search forever.

The initial population starts with the grammar's classic designs (`classics`, on by default:
linear attention, retention, GLA, DeltaNet, Gated DeltaNet), then random ones up to `initial`.
Human designs are where the good basins of a mostly flat landscape are likely to be;
`benchmarks/search.py` gives every arm it compares (random search included) the same start, the
classics or the same random designs (`--start`), so the comparison measures the search alone.

Guided mutation (`guided`, on by default) picks which motif to change from what the study has
measured so far instead of at random: each motif's mean fitness over the designs that use it,
shrunk toward the mean of all designs, and the child is the parent's untried neighbour whose
changed motif gains most by that estimate. A motif the parent shares with poor designs gets
changed first; a motif no design has used yet scores the mean, so it is tried before one seen to
do badly. The estimates are marginal means over a handful of designs, so a motif that only ever
appeared beside bad ones looks bad (benchmarks/RESULTS.md, search section, has where that bites).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pydantic import Field

from discover.agents.grammar import SLOTS, Genome, difference, neighbours
from discover.agents.proposers.base import Member, Proposal, ProposerSetup, fitness_value
from discover.agents.proposers.grammar_search import MAX_TRIES, GrammarProposer
from discover.agents.section import Section


class EvolutionConfig(Section):
    population: int = Field(default=24, ge=2)
    tournament: int = Field(default=4, ge=1)
    initial: int = Field(default=8, ge=1)
    guided: bool = True  # change the motif the study's measurements favour, not a random one
    classics: bool = True  # start from the grammar's classic designs, then random ones


class EvolutionProposer(GrammarProposer):
    name = "evolution"
    origin = "evolution"
    config_section = "evolution"
    config_class = EvolutionConfig

    def __init__(self, config: EvolutionConfig | None = None) -> None:
        self.config = config or EvolutionConfig()

    @classmethod
    def create(cls, setup: ProposerSetup) -> EvolutionProposer:
        assert isinstance(setup.section, EvolutionConfig)
        return cls(setup.section)

    def search(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        config = self.config
        if start := self.start(members, tried, rng, config.classics, config.initial, "Initial population"):
            return start
        grammar_members = [member for member in members if member.genome is not None]
        population = grammar_members[-self.config.population :]
        estimate = motif_estimates(grammar_members)
        for _ in range(MAX_TRIES):
            contestants = rng.sample(population, min(self.config.tournament, len(population)))
            parent = max(
                contestants, key=lambda member: (fitness_value(member.fitness), member.architecture_id)
            )
            assert parent.genome is not None
            children = [child for child in neighbours(parent.genome) if child.key() not in tried]
            if not children:
                continue
            gains = {child: estimated_gain(parent.genome, child, estimate) for child in children}
            if self.config.guided:
                children = [child for child in children if gains[child] >= max(gains.values()) - 1e-12]
            child = rng.choice(children)
            changes = "; ".join(
                f"{slot}: {before} -> {after}"
                for slot, (before, after) in difference(parent.genome, child).items()
            )
            why = (
                f" Of its {len(gains)} untried one-motif neighbours, this change gains most by the study's "
                f"motif estimates ({gains[child]:+.3f})." if self.config.guided else ""
            )  # fmt: skip
            motivation = (
                f"Mutation of {parent.name} (fitness {parent.fitness:.3f}), the fittest of "
                f"{len(contestants)} drawn from the last {len(population)} designs. Changed {changes}.{why} "
                f"Result: {child.describe()}."
            )
            return self.proposal(child, motivation, [parent.architecture_id])
        return None


@dataclass(frozen=True)
class MotifEstimates:
    """Each motif's mean fitness over the study's designs that use it, shrunk toward the mean of all
    designs by one pseudo-design. A motif no design uses counts as the mean."""

    overall: float
    by_motif: dict[tuple[str, object], float]

    def __call__(self, slot: str, motif: object) -> float:
        return self.by_motif.get((slot, motif), self.overall)


def motif_estimates(members: list[Member]) -> MotifEstimates:
    # Failed designs count as fitness 0: a motif that breaks training should look bad.
    scored = [
        (member.genome, member.fitness if math.isfinite(member.fitness) else 0.0)
        for member in members
        if member.genome is not None
    ]
    overall = sum(fitness for _, fitness in scored) / len(scored) if scored else 0.0
    sums: dict[tuple[str, object], tuple[float, int]] = {}
    for genome, fitness in scored:
        for slot in SLOTS:
            motif = (slot, getattr(genome, slot))
            total, count = sums.get(motif, (overall, 1))  # start from the pseudo-design
            sums[motif] = (total + fitness, count + 1)
    return MotifEstimates(overall, {motif: total / count for motif, (total, count) in sums.items()})


def estimated_gain(parent: Genome, child: Genome, estimate: MotifEstimates) -> float:
    """The summed change in estimated fitness over the motifs where `child` differs from `parent`."""
    return sum(
        estimate(slot, after) - estimate(slot, before)
        for slot, (before, after) in difference(parent, child).items()
    )
