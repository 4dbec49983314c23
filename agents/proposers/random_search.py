"""Random search: uniform samples of the grammar, the control every claim of search efficiency is
measured against."""

from __future__ import annotations

import random

from discover.agents.proposers.base import Member, Proposal
from discover.agents.proposers.grammar_search import GrammarProposer


class RandomProposer(GrammarProposer):
    name = "random"
    origin = "random"

    def search(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        genome = self.random_untried(tried, rng)
        return None if genome is None else self.proposal(genome, f"Random sample: {genome.describe()}.", [])
