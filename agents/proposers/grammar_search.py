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

from discover.agents.grammar import CLASSICS, Genome, readable_name, render, sample, space
from discover.agents.proposers.base import Member, Proposal, Proposer, ProposerStop, fitness_value
from discover.experiments.contract import code_hash
from discover.knowledge_base.schema import Architecture, Run

if TYPE_CHECKING:
    from discover.agents.context import StudyContext

MAX_TRIES = 200  # draws before giving up on finding a design the study has not tried


@cache
def genome_by_code_hash() -> dict[str, Genome]:
    """Every design of the grammar by the hash of its rendered file."""
    return {code_hash(render(genome)): genome for genome in space()}


def genome_of(architecture: Architecture) -> Genome | None:
    """The grammar design a stored architecture is, or None for one outside the grammar (a baseline,
    an llm design). Known by its code, never its name: a name is for people, and may carry a suffix
    that keeps it unique in the study (older studies named designs `motif-<key>`)."""
    return genome_by_code_hash().get(architecture.code_hash)


def members(screened: list[tuple[Architecture, Run]]) -> list[Member]:
    """One member per architecture, oldest first, with its best screening fitness."""
    best: dict[str, Member] = {}
    for architecture, run in screened:
        fitness = run.fitness if run.fitness is not None and run.status == "succeeded" else math.nan
        previous = best.get(architecture.id)
        if previous is None or fitness_value(fitness) > fitness_value(previous.fitness):
            best[architecture.id] = Member(
                architecture.id, architecture.name, genome_of(architecture), fitness
            )
    return list(best.values())


class GrammarProposer(Proposer):
    trusted = True

    def propose(
        self, study: StudyContext, number: int, parent_ids: list[str], context: dict[str, Any]
    ) -> Proposal:
        screened = study.kb.study_runs(study.study_id, fidelity="screen")
        tried = {
            genome.key()
            for code in study.kb.architecture_code_hashes(study.study_id)
            if (genome := genome_by_code_hash().get(code)) is not None
        }
        rng = random.Random(f"{study.config.seed}/{number}")  # the same experiment draws the same
        proposal = self.search(members(screened), tried, rng)
        if proposal is None:
            raise ProposerStop("exhausted", "the proposer found no design the study has not tried")
        return proposal

    @abstractmethod
    def search(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        """The next design, or None when no untried design could be found. `tried` holds the
        keys of every grammar design the study has already proposed."""

    def start(
        self,
        members: list[Member],
        tried: set[str],
        rng: random.Random,
        classics: bool,
        initial: int,
        why: str,
    ) -> Proposal | None:
        """The study's first designs, drawn alike by every proposer that starts before it searches:
        the grammar's classics (if `classics`), then random designs until `initial` grammar designs
        are measured. None once the start is over."""
        if classics and (classic := self.next_classic(tried, why)):
            return classic
        if sum(member.genome is not None for member in members) >= initial:
            return None
        genome = self.random_untried(tried, rng)
        return None if genome is None else self.proposal(genome, f"{why}: {genome.describe()}.", [])

    @staticmethod
    def random_untried(tried: set[str], rng: random.Random) -> Genome | None:
        """A uniform sample of the grammar the study has not tried (None after MAX_TRIES draws)."""
        for _ in range(MAX_TRIES):
            genome = sample(rng)
            if genome.key() not in tried:
                return genome
        return None

    def next_classic(self, tried: set[str], why: str) -> Proposal | None:
        """The first of the grammar's classic designs the study has not tried, if any."""
        for classic, genome in CLASSICS.items():
            if genome.key() not in tried:
                return self.proposal(genome, f"{why}, the classic {classic}: {genome.describe()}.", [])
        return None

    def proposal(self, genome: Genome, motivation: str, parents: list[str]) -> Proposal:
        return Proposal(
            name=readable_name(genome), motivation=motivation, code=render(genome), origin=self.origin,
            parent_ids=parents,
        )  # fmt: skip
