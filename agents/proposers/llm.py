"""The llm proposer: researcher, coder, analyst and (optionally) judge agents on any
OpenAI-compatible endpoint (`discover.agents.roles` has what each role is shown).

The researcher plans a design from its parents, the elites, the baselines and what the knowledge
base retrieves; the coder writes the file, and rewrites it from the probes' verdict when it fails
them (`repair_attempts` times). Its code is written freely, so it is never trusted: only an
isolating sandbox may run it. Every call is recorded in the knowledge base against the experiment
that made it, and the dollars a study spent before a resume count against the cap.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlmodel import select

from discover.agents import roles
from discover.agents.llm import LLM, CallRecord, DollarCapReached, LLMError, LLMSettings
from discover.agents.proposers.base import Judgement, Proposal, Proposer, ProposerSetup, ProposerStop
from discover.knowledge_base.novelty import is_duplicate
from discover.knowledge_base.schema import Architecture, Finding, LLMCall, Run

if TYPE_CHECKING:
    from discover.agents.context import StudyContext

# The experiment whose graph this thread is running: LLM calls are recorded against it.
CURRENT_EXPERIMENT: ContextVar[str | None] = ContextVar("current_experiment", default=None)


class LLMConfig(LLMSettings):
    repair_attempts: int = Field(default=2, ge=0)
    replans: int = Field(default=2, ge=0)  # a plan that repeats an earlier design is asked for again
    judge: bool = False
    prompts_dir: str | None = None  # templates here override the built-in ones (relative: to the study)


def ending(error: LLMError, otherwise: str) -> ProposerStop:
    return ProposerStop("llm_cap" if isinstance(error, DollarCapReached) else otherwise, str(error))


class LLMProposer(Proposer):
    name = "llm"
    origin = "llm"
    config_section = "llm"
    config_class = LLMConfig

    def __init__(self, llm: LLM, config: LLMConfig, prompts: Path | None) -> None:
        self.llm, self.config, self.prompts = llm, config, prompts
        self.repair_attempts, self.replans = config.repair_attempts, config.replans

    @classmethod
    def create(cls, setup: ProposerSetup) -> LLMProposer:
        config = setup.section
        assert isinstance(config, LLMConfig)
        kb, study_id = setup.kb, setup.study_id

        def record(call: CallRecord) -> None:
            kb.log_llm_call(study_id=study_id, experiment_id=CURRENT_EXPERIMENT.get(), **call.model_dump())

        with kb.reading() as session:
            costs = session.exec(select(LLMCall.cost_usd).where(LLMCall.study_id == study_id)).all()
        prompts = None if config.prompts_dir is None else setup.folder / config.prompts_dir
        return cls(LLM(config, record=record, spent_usd=math.fsum(costs)), config, prompts)

    def select_parents(self, study: StudyContext, number: int) -> list[str]:
        return roles.select_parents(study, number)

    def context(self, study: StudyContext, parent_ids: list[str]) -> dict[str, Any]:
        return roles.research_context(study, parent_ids)

    def propose(
        self, study: StudyContext, number: int, parent_ids: list[str], context: dict[str, Any]
    ) -> Proposal:
        """The researcher's plan, as a proposal without code (the coder writes it)."""
        try:
            plan = roles.research(self.llm, self.prompts, context)
        except LLMError as error:
            raise ending(error, "no_proposal") from None
        return Proposal(
            name=f"{plan.name}-e{number:05d}", motivation=plan.motivation, code="", origin=self.origin,
            parent_ids=parent_ids, hypothesis=plan.hypothesis, design_plan=plan.design_plan,
        )  # fmt: skip

    def duplicate_of(self, study: StudyContext, proposal: Proposal) -> str | None:
        """Before any code is written: the idea, by its motivation."""
        novelty = is_duplicate(study.kb, proposal.motivation)
        return f"the same idea as {novelty.nearest[0].name}" if novelty.duplicate else None

    def write_code(
        self, study: StudyContext, proposal: Proposal, previous: str | None, failures: list[dict[str, Any]]
    ) -> str:
        parent = proposal.parent_ids[0] if proposal.parent_ids else None
        try:
            return roles.write_candidate(
                study, self.llm, self.prompts, proposal.model_dump(), parent, previous, failures
            )
        except LLMError as error:
            raise ending(error, "no_code") from None

    def judge(
        self, study: StudyContext, architecture: Architecture, proposal: Proposal, run: Run
    ) -> Judgement | None:
        if not self.config.judge:
            return None
        try:
            score = roles.judge(study, self.llm, self.prompts, architecture, proposal.hypothesis, run)
            return Judgement(score=score.score, rationale=score.rationale)
        except LLMError as error:
            raise ending(error, "judge failed") from None

    def analyze(
        self, study: StudyContext, architecture: Architecture, proposal: Proposal, run: Run | None
    ) -> list[Finding]:
        try:
            return roles.analyze(study, self.llm, self.prompts, architecture, proposal.hypothesis, run)
        except LLMError as error:
            raise ending(error, "analyst failed") from None
