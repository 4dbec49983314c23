"""Model-based search over the grammar (in the spirit of White et al.'s Neural Predictor and of
Bayesian optimisation with a tree ensemble): fit a regressor on the designs measured so far, then
screen the untried design the model rates highest, counting its uncertainty as promise.

    features    one indicator per (slot, motif) of the genome: the grammar's whole description;
                with `naswot`, also the design's NASWOT score at initialisation (`signals.py`)
    model       scikit-learn's ExtraTreesRegressor, `trees` trees; its mean over trees predicts
                a design's screening fitness, their spread says how unsure it is
    pick        the untried design of the whole space (a few thousand) with the highest
                mean + `exploration` x spread (an upper confidence bound)

The start (classics, `initial` random designs) and the warm start are `model_based.py`'s; warm-start
points count `prior_weight` each against one of this study's.
"""

from __future__ import annotations

import random
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from discover.agents.grammar import SLOTS, Genome, space
from discover.agents.proposers.base import Proposal
from discover.agents.proposers.model_based import Measured, ModelBasedConfig, ModelBasedProposer
from discover.agents.proposers.signals import space_naswot

if TYPE_CHECKING:
    from discover.agents.context import StudyContext


class SurrogateConfig(ModelBasedConfig):
    trees: int = Field(default=100, ge=2)
    exploration: float = Field(default=1.0, ge=0)  # weight of the trees' spread in the pick
    prior_weight: float = Field(default=0.5, gt=0, le=1)  # one of their points, against one of ours
    naswot: bool = False  # a zero-cost signal as one more input (benchmarks/zero_cost.py)


FEATURES = [(slot, motif) for slot, motifs in SLOTS.items() for motif in motifs]


def features(genomes: list[Genome]) -> np.ndarray:
    """One row a genome, an indicator per (slot, motif)."""
    return np.array([[float(getattr(g, slot) == motif) for slot, motif in FEATURES] for g in genomes])


@cache
def space_features() -> np.ndarray:
    return features(list(space()))


@cache
def space_index() -> dict[Genome, int]:
    return {genome: index for index, genome in enumerate(space())}


class SurrogateProposer(ModelBasedProposer):
    name = "surrogate"
    origin = "surrogate"
    config_section = "surrogate"
    config_class = SurrogateConfig
    config: SurrogateConfig
    signal: np.ndarray | None = None  # with `naswot`: every design's score, in `space()` order

    def propose(
        self, study: StudyContext, number: int, parent_ids: list[str], context: dict[str, Any]
    ) -> Proposal:
        if self.config.naswot:  # at the screen's setting, of its first task: what fitness measures
            self.signal = space_naswot(study.spec("screen").parts[0])
        return super().propose(study, number, parent_ids, context)

    def inputs(self, genomes: list[Genome], rows: np.ndarray) -> np.ndarray:
        """The model's inputs for `genomes` (their indicator `rows`), with the signal if on."""
        if self.signal is None:
            return rows
        column = self.signal[[space_index()[genome] for genome in genomes]]
        return np.column_stack([rows, column])

    def pick(self, measured: Measured, tried: set[str], rng: random.Random) -> Proposal | None:
        untried = [i for i, genome in enumerate(space()) if genome.key() not in tried]
        if not untried:
            return None
        from sklearn.ensemble import ExtraTreesRegressor

        points = measured + self.prior
        weights = [1.0] * len(measured) + [self.config.prior_weight] * len(self.prior)
        model = ExtraTreesRegressor(n_estimators=self.config.trees, random_state=rng.randrange(2**31))
        genomes = [g for g, _ in points]
        model.fit(self.inputs(genomes, features(genomes)), [f for _, f in points], sample_weight=weights)
        candidates = self.inputs([space()[i] for i in untried], space_features()[untried])
        per_tree = np.stack([tree.predict(candidates) for tree in model.estimators_])
        mean, spread = per_tree.mean(axis=0), per_tree.std(axis=0)
        score = mean + self.config.exploration * spread
        best = int(np.argmax(score))  # the first of equals: `space()` has a fixed order
        genome = space()[untried[best]]
        signal = " (motifs and NASWOT at initialisation)" if self.signal is not None else ""
        motivation = (
            f"Model-based pick: an ensemble of {self.config.trees} trees{signal} fitted on this study's "
            f"{len(measured)} measured designs{self.elsewhere(self.config.prior_weight)} predicts fitness "
            f"{mean[best]:.3f} ± {spread[best]:.3f} for it, the highest upper bound (mean + "
            f"{self.config.exploration:g} x spread) of the {len(untried)} untried designs. "
            f"{genome.describe()}."
        )
        return self.proposal(genome, motivation, [])
