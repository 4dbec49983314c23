"""What the model-based proposers share (`surrogate`, `tpe`): the same start as evolution, a warm
start from other studies of the task, and no state of their own.

A study starts with the grammar's classic designs if `classics` is set, then samples at random until
`initial` designs are measured, exactly as evolution draws its initial designs, so
`benchmarks/search.py` starts every arm alike. Then the subclass's model picks. With `warm_start`
the model also learns from other studies' screens in the knowledge base that mean what this study's
do (the same task, settings, screen, baselines and scoring), and every proposal says how many of
its points came from elsewhere. Every proposal is refitted from the knowledge base, so a resumed
study proposes as the uninterrupted one would.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from pydantic import Field

from discover.agents.grammar import Genome
from discover.agents.proposers.base import Member, Proposal, ProposerSetup
from discover.agents.proposers.grammar_search import GrammarProposer, genome_by_code_hash
from discover.agents.section import Section

if TYPE_CHECKING:
    from discover.agents.context import StudyContext


Measured = list[tuple[Genome, float]]  # designs with their screening fitness


# What makes a screening fitness mean the same in two studies: the same data and training, the same
# reference and scoring. Their seeds, budgets, proposers and limits may differ.
SCREEN_DEFINING = ("task", "settings", "screen", "baselines", "scoring")

# How many such screens make `proposer = "auto"` run the warm-started surrogate
# (`discover.agents.proposer_choice`): the fewest the benchmark measured it with, 6 studies of 12.
WARM_SCREENS = 72


def screens_alike(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Whether another study's screens (its stored configuration `theirs`) can teach ours: a screen
    of the same task at other settings, or against another reference, scores on another scale."""
    return all(ours.get(key) == theirs.get(key) for key in SCREEN_DEFINING)


class ModelBasedConfig(Section):
    initial: int = Field(default=4, ge=1)  # designs measured before the model decides
    classics: bool = False  # start from the grammar's classic designs, as evolution does
    warm_start: bool = True  # learn from other studies' screens of the same task too


class ModelBasedProposer(GrammarProposer):
    config_class: type[ModelBasedConfig]

    def __init__(self, config: ModelBasedConfig | None = None) -> None:
        self.config = config or self.config_class()
        self.prior: Measured = []  # other studies' screens
        self.prior_studies = 0

    @classmethod
    def create(cls, setup: ProposerSetup) -> ModelBasedProposer:
        assert isinstance(setup.section, cls.config_class)
        return cls(setup.section)

    def propose(
        self, study: StudyContext, number: int, parent_ids: list[str], context: dict[str, Any]
    ) -> Proposal:
        # Read here, where the study is known; `search` stays a function of what it is given.
        self.prior, self.prior_studies = [], 0
        if self.config.warm_start:
            ours = study.config.model_dump(mode="json")
            rows = [
                (genome, fitness, other)
                for code, fitness, other, theirs in study.kb.other_studies_screens(
                    study.task.name, study.study_id
                )
                if screens_alike(ours, theirs) and (genome := genome_by_code_hash().get(code))
            ]
            self.prior = [(genome, fitness) for genome, fitness, _ in rows]
            self.prior_studies = len({other for _, _, other in rows})
        return super().propose(study, number, parent_ids, context)

    def search(self, members: list[Member], tried: set[str], rng: random.Random) -> Proposal | None:
        config = self.config
        if start := self.start(members, tried, rng, config.classics, config.initial, "Initial design"):
            return start
        measured = [(m.genome, m.fitness if math.isfinite(m.fitness) else 0.0) for m in members if m.genome]
        return self.pick(measured, tried, rng)

    @abstractmethod
    def pick(self, measured: Measured, tried: set[str], rng: random.Random) -> Proposal | None:
        """The model's next design, never one in `tried`; None when every design was tried.
        `measured` is this study's designs with their fitness (a failure counts 0); `self.prior`
        holds the warm start's."""

    def elsewhere(self, weight: float | None = None) -> str:
        """How much of the model's data came from other studies, for the motivation."""
        if not self.prior:
            return ""
        weighted = f" (weight {weight:g})" if weight is not None else ""
        studies = f"{self.prior_studies} earlier studies of the task"
        return f" and {len(self.prior)} screens from {studies}{weighted}"
