"""What the offline proposers share: they search discover's own grammar of mixer designs
(`discover.agents.grammar`), so their code is rendered, never written freely, and is trusted.

Both read the study's screened designs from the knowledge base, so they hold no state of their own
and a resumed study picks up exactly where it stopped.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from functools import cache
from typing import TYPE_CHECKING, Any

from discover.agents.grammar import Genome, render, space
from discover.agents.proposers.base import Member, Proposal, Proposer, ProposerStop, fitness_value
from discover.knowledge_base.schema import Architecture, Run

if TYPE_CHECKING:
    from discover.agents.context import StudyContext

NAME_PREFIX = "motif-"
MAX_TRIES = 200  # draws before giving up on finding a design the study has not tried


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
        if previous is None or fitness_value(fitness) > fitness_value(previous.fitness):
            best[architecture.id] = Member(architecture.id, genome_by_name().get(architecture.name), fitness)
    return list(best.values())


class GrammarProposer(Proposer):
    trusted = True

    def propose(
        self, study: StudyContext, number: int, parent_ids: list[str], context: dict[str, Any]
    ) -> Proposal:
        screened = study.kb.study_runs(study.study_id, fidelity="screen")
        tried = study.kb.architecture_names(study.study_id)
        rng = random.Random(f"{study.config.seed}/{number}")  # the same experiment draws the same
        proposal = self.search(members(screened), tried, rng)
        if proposal is None:
            raise ProposerStop("exhausted", "the proposer found no design the study has not tried")
        return proposal

    @abstractmethod
    def search(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        """The next design, or None when no untried design could be found. `tried` holds the
        names of every design the study has already proposed."""

    def proposal(self, genome: Genome, motivation: str, parents: list[str]) -> Proposal:
        return Proposal(
            name=name_of(genome), motivation=motivation, code=render(genome), origin=self.origin,
            parent_ids=parents,
        )  # fmt: skip
