"""Random search: uniform samples of the grammar, the control every claim of search efficiency is
measured against."""

from __future__ import annotations

import random

from discover.agents.grammar import sample
from discover.agents.proposers.base import Member, Proposal
from discover.agents.proposers.grammar_search import MAX_TRIES, GrammarProposer


class RandomProposer(GrammarProposer):
    name = "random"
    origin = "random"

    def search(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        for _ in range(MAX_TRIES):
            genome = sample(rng)
            if genome.key() not in tried:
                return self.proposal(genome, f"Random sample: {genome.describe()}.", [])
        return None
