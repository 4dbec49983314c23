"""Model-based search over the grammar (in the spirit of White et al.'s Neural Predictor and of
Bayesian optimisation with a tree ensemble): fit a regressor on the designs measured so far, then
screen the untried design the model rates highest, counting its uncertainty as promise.

    features    one indicator per (slot, motif) of the genome: the grammar's whole description
    model       scikit-learn's ExtraTreesRegressor, `trees` trees; its mean over trees predicts
                a design's screening fitness, their spread says how unsure it is
    pick        the untried design of the whole space (a few thousand) with the highest
                mean + `exploration` x spread (an upper confidence bound)

It starts with the grammar's classic designs if `classics` is set, then samples at random until
`initial` designs of the study are measured, exactly as evolution draws its initial designs, so
`benchmarks/search.py` starts every arm alike. With
`warm_start` the model also learns from other studies' screens of the same task in the knowledge
base, each weighted `prior_weight` against a design of this study, and every proposal says how
many of its training points came from elsewhere. It holds no state of its own: every proposal is
refitted from the knowledge base, so a resumed study proposes as the uninterrupted one would.
"""

from __future__ import annotations

import math
import random
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from discover.agents.grammar import SLOTS, Genome, space
from discover.agents.proposers.base import Member, Proposal, ProposerSetup
from discover.agents.proposers.grammar_search import GrammarProposer, genome_by_code_hash
from discover.agents.proposers.random_search import RandomProposer
from discover.agents.section import Section

if TYPE_CHECKING:
    from discover.agents.context import StudyContext


class SurrogateConfig(Section):
    initial: int = Field(default=4, ge=1)  # designs measured before the model decides
    classics: bool = False  # start from the grammar's classic designs, as evolution does
    trees: int = Field(default=100, ge=2)
    exploration: float = Field(default=1.0, ge=0)  # weight of the trees' spread in the pick
    warm_start: bool = True  # learn from other studies' screens of the same task too
    prior_weight: float = Field(default=0.5, gt=0, le=1)  # one of their points, against one of ours


FEATURES = [(slot, motif) for slot, motifs in SLOTS.items() for motif in motifs]


def features(genomes: list[Genome]) -> np.ndarray:
    """One row a genome, an indicator per (slot, motif)."""
    return np.array([[float(getattr(g, slot) == motif) for slot, motif in FEATURES] for g in genomes])


@cache
def space_features() -> np.ndarray:
    return features(list(space()))


class SurrogateProposer(GrammarProposer):
    name = "surrogate"
    origin = "surrogate"
    config_section = "surrogate"
    config_class = SurrogateConfig

    def __init__(self, config: SurrogateConfig | None = None) -> None:
        self.config = config or SurrogateConfig()
        self.prior: list[tuple[Genome, float]] = []
        self.prior_studies = 0

    @classmethod
    def create(cls, setup: ProposerSetup) -> SurrogateProposer:
        assert isinstance(setup.section, SurrogateConfig)
        return cls(setup.section)

    def propose(
        self, study: StudyContext, number: int, parent_ids: list[str], context: dict[str, Any]
    ) -> Proposal:
        # Read here, where the study is known; `search` stays a function of what it is given.
        self.prior, self.prior_studies = [], 0
        if self.config.warm_start:
            rows = study.kb.other_studies_screens(study.task.name, study.study_id)
            self.prior = [(genome, f) for code, f, _ in rows if (genome := genome_by_code_hash().get(code))]
            self.prior_studies = len({s for code, _, s in rows if code in genome_by_code_hash()})
        return super().propose(study, number, parent_ids, context)

    def search(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        measured = [(m.genome, m.fitness if math.isfinite(m.fitness) else 0.0) for m in members if m.genome]
        if self.config.classics and (classic := self.next_classic(tried, "Initial design")):
            return classic
        if len(measured) < self.config.initial:
            proposal = RandomProposer().search(members, tried, rng)
            if proposal is not None:
                proposal.origin = self.origin
                proposal.motivation = f"Initial design: {proposal.motivation[len('Random sample: ') :]}"
            return proposal
        untried = [i for i, genome in enumerate(space()) if genome.key() not in tried]
        if not untried:
            return None
        from sklearn.ensemble import ExtraTreesRegressor

        points = measured + self.prior
        weights = [1.0] * len(measured) + [self.config.prior_weight] * len(self.prior)
        model = ExtraTreesRegressor(n_estimators=self.config.trees, random_state=rng.randrange(2**31))
        model.fit(features([g for g, _ in points]), [f for _, f in points], sample_weight=weights)
        candidates = space_features()[untried]
        per_tree = np.stack([tree.predict(candidates) for tree in model.estimators_])
        mean, spread = per_tree.mean(axis=0), per_tree.std(axis=0)
        score = mean + self.config.exploration * spread
        best = int(np.argmax(score))  # the first of equals: `space()` has a fixed order
        genome = space()[untried[best]]
        elsewhere = (
            f" and {len(self.prior)} screens from {self.prior_studies} earlier studies of the task "
            f"(weight {self.config.prior_weight})"
            if self.prior
            else ""
        )
        motivation = (
            f"Model-based pick: an ensemble of {self.config.trees} trees fitted on this study's "
            f"{len(measured)} measured designs{elsewhere} predicts fitness {mean[best]:.3f} ± "
            f"{spread[best]:.3f} for it, the highest upper bound (mean + {self.config.exploration:g} x "
            f"spread) of the {len(untried)} untried designs. {genome.describe()}."
        )
        return self.proposal(genome, motivation, [])
