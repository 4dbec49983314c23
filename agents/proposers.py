"""The offline proposers: regularized evolution over the motif grammar, and its random control.

Both read the study's screened designs from the knowledge base, so they hold no state of their own
and a resumed study picks up exactly where it stopped. (The llm proposer is the agent graph's
researcher and coder; see `graph.py`.)

Regularized evolution (Real et al., "Regularized Evolution for Image Classifier Architecture
Search", 2019): the population is the most recent `population` screened designs; a parent is the
fittest of `tournament` members drawn at random; the child changes one motif. Ageing out the
oldest, rather than the worst, keeps a lucky early score from ruling the search forever.

The initial population starts with the grammar's classic designs (`classics`, on by default:
linear attention, retention, GLA, DeltaNet, Gated DeltaNet), then random ones up to `initial`.
Human designs are where the good basins of a mostly flat landscape are likely to be; random search
gets no such head start, so `benchmarks/search.py` has an arm that measures evolution without it.

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
from functools import cache
from typing import Literal, Protocol

from pydantic import BaseModel

from discover.agents.config import EvolutionConfig
from discover.agents.grammar import CLASSICS, SLOTS, Genome, difference, neighbours, render, sample, space
from discover.knowledge_base.schema import Architecture, Run

NAME_PREFIX = "motif-"
MAX_TRIES = 200  # draws before giving up on finding a design the study has not tried


class Proposal(BaseModel):
    name: str
    motivation: str
    code: str
    origin: Literal["evolution", "random", "llm"]
    parent_ids: list[str] = []
    hypothesis: str = ""
    design_plan: str = ""  # the researcher's plan, for the coder (llm proposals)


@dataclass(frozen=True)
class Member:
    """A screened design of the study."""

    architecture_id: str
    genome: Genome | None  # None for designs outside the grammar (baselines, llm designs)
    fitness: float  # NaN counts as the worst


class Proposer(Protocol):
    name: str

    def propose(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        """The next design, or None when no untried design could be found. `tried` holds the
        names of every design the study has already proposed."""
        ...


@cache
def genome_by_name() -> dict[str, Genome]:
    return {NAME_PREFIX + genome.key(): genome for genome in space()}


def name_of(genome: Genome) -> str:
    return NAME_PREFIX + genome.key()


def members(screened: list[tuple[Architecture, Run]]) -> list[Member]:
    """One member per architecture, oldest first, with its best screening fitness."""
    best: dict[str, Member] = {}
    for architecture, run in screened:
        fitness = run.fitness if run.fitness is not None and run.status == "succeeded" else math.nan
        previous = best.get(architecture.id)
        if previous is None or _value(fitness) > _value(previous.fitness):
            best[architecture.id] = Member(architecture.id, genome_by_name().get(architecture.name), fitness)
    return list(best.values())


def _value(fitness: float) -> float:
    return fitness if math.isfinite(fitness) else -math.inf


def _grammar_proposal(
    genome: Genome, origin: Literal["evolution", "random"], motivation: str, parents: list[str]
) -> Proposal:
    return Proposal(
        name=name_of(genome), motivation=motivation, code=render(genome), origin=origin, parent_ids=parents
    )


class RandomProposer:
    """Uniform samples of the grammar: the control every claim of search efficiency is measured against."""

    name = "random"

    def propose(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        for _ in range(MAX_TRIES):
            genome = sample(rng)
            if name_of(genome) not in tried:
                return _grammar_proposal(genome, "random", f"Random sample: {genome.describe()}.", [])
        return None


class EvolutionProposer:
    name = "evolution"

    def __init__(self, config: EvolutionConfig) -> None:
        self.config = config

    def propose(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        grammar_members = [member for member in members if member.genome is not None]
        if self.config.classics:
            for classic, genome in CLASSICS.items():
                if name_of(genome) not in tried:
                    motivation = f"Initial population, the classic {classic}: {genome.describe()}."
                    return _grammar_proposal(genome, "evolution", motivation, [])
        if len(grammar_members) < self.config.initial:
            proposal = RandomProposer().propose(members, tried, rng)
            if proposal is not None:
                proposal.origin = "evolution"
                proposal.motivation = f"Initial population: {proposal.motivation[len('Random sample: ') :]}"
            return proposal
        population = grammar_members[-self.config.population :]
        estimate = motif_estimates(grammar_members)
        for _ in range(MAX_TRIES):
            contestants = rng.sample(population, min(self.config.tournament, len(population)))
            parent = max(contestants, key=lambda member: (_value(member.fitness), member.architecture_id))
            assert parent.genome is not None
            children = [child for child in neighbours(parent.genome) if name_of(child) not in tried]
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
                f"Mutation of {name_of(parent.genome)} (fitness {parent.fitness:.3f}), the fittest of "
                f"{len(contestants)} drawn from the last {len(population)} designs. Changed {changes}.{why} "
                f"Result: {child.describe()}."
            )
            return _grammar_proposal(child, "evolution", motivation, [parent.architecture_id])
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


def make_proposer(name: str, evolution: EvolutionConfig) -> Proposer:
    if name == "random":
        return RandomProposer()
    if name == "evolution":
        return EvolutionProposer(evolution)
    raise ValueError(f"no offline proposer named {name!r}; use evolution or random")
