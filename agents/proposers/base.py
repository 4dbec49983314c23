"""What a proposer is: the part of an experiment that decides what to try next.

The experiment graph (`discover.agents.graph`) calls a proposer at each step that depends on who
proposes; every method but `propose` has a default that fits a proposer without an LLM:

    select_parents -> context -> propose -> duplicate_of -> [propose again, up to `replans` times]
        -> write_code -> (probes)
        -> [write_code again, up to `repair_attempts` times] -> ... -> judge -> analyze

A new proposer is one file in this folder (a `Proposer` subclass) and one `PROPOSERS.register`
line in `__init__.py`; its class says which origin its designs are recorded under, whether they
are trusted (rendered by discover itself, so the process backend may run them), and which section
of `discover.toml` configures it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field

from discover.agents.section import Section
from discover.knowledge_base.schema import Architecture, Finding, Run

if TYPE_CHECKING:
    from discover.agents.context import StudyContext
    from discover.knowledge_base.store import KnowledgeBase


class Proposal(BaseModel):
    name: str
    motivation: str
    code: str  # empty until the coder writes it, for proposers that plan first
    origin: str
    parent_ids: list[str] = []
    hypothesis: str = ""
    design_plan: str = ""  # the researcher's plan, for the coder (llm proposals)


class Judgement(BaseModel):
    score: float = Field(ge=0.0, le=1.0)  # fills fitness's qualitative term
    rationale: str = ""


class ProposerStop(Exception):
    """A step that could not be done: `status` is the experiment's ending (see graph.ENDINGS) and
    the message says why in one line."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class ProposerSetup:
    """What the composition root hands a proposer when it builds one."""

    section: Section | None  # the proposer's section of discover.toml, if it has one
    kb: KnowledgeBase
    study_id: str
    folder: Path  # the study folder


class Proposer(ABC):
    name: ClassVar[str]
    origin: ClassVar[str]  # recorded on every design it proposes
    trusted: ClassVar[bool] = False  # its code is rendered by discover itself, never written freely
    config_section: ClassVar[str | None] = None  # its section of discover.toml
    config_class: ClassVar[type[Section] | None] = None
    repair_attempts: int = 0  # how often a design that failed its probes is rewritten
    replans: int = 0  # how often a duplicate plan is proposed again, shown what it repeated

    @classmethod
    def create(cls, setup: ProposerSetup) -> Proposer:
        return cls()

    def select_parents(self, study: StudyContext, number: int) -> list[str]:
        """Designs the next proposal builds on (proposers that pick their own return none)."""
        return []

    def context(self, study: StudyContext, parent_ids: list[str]) -> dict[str, Any]:
        """What the proposal is made from, kept in the experiment's checkpointed state."""
        return {}

    @abstractmethod
    def propose(
        self, study: StudyContext, number: int, parent_ids: list[str], context: dict[str, Any]
    ) -> Proposal:
        """The next design (its code may come later, from `write_code`). Raises ProposerStop, with
        status "exhausted" when no untried design is left."""

    def duplicate_of(self, study: StudyContext, proposal: Proposal) -> str | None:
        """Why the proposal was tried before (None if it was not): by default, the same code."""
        earlier = study.kb.find_architecture(study.study_id, proposal.code)
        return None if earlier is None else f"the same code as {earlier.name}"

    def write_code(
        self, study: StudyContext, proposal: Proposal, previous: str | None, failures: list[dict[str, Any]]
    ) -> str:
        """The candidate file; on a repair, from the last file and the probes it failed."""
        return proposal.code

    def judge(
        self, study: StudyContext, architecture: Architecture, proposal: Proposal, run: Run
    ) -> Judgement | None:
        """A judgement of the design that its metric cannot see, or None for none."""
        return None

    def analyze(
        self, study: StudyContext, architecture: Architecture, proposal: Proposal, run: Run | None
    ) -> list[Finding]:
        """Findings about the experiment; none means the rule-based analyst's."""
        return []


@dataclass(frozen=True)
class Member:
    """A screened design of the study."""

    architecture_id: str
    name: str
    genome: Any  # a grammar Genome, or None for designs outside the grammar (baselines, llm designs)
    fitness: float  # NaN counts as the worst


def fitness_value(fitness: float) -> float:
    """NaN (a failed design) ranks below every measured fitness."""
    return fitness if math.isfinite(fitness) else -math.inf
