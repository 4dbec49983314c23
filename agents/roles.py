"""The LLM roles of the experiment graph: what each is shown, and the answer it must give.

    researcher  parents, elites, baselines, verified claims, the study's motif findings, every
                design tried, its duplicates and its budget left (`memory.py`), retrieved findings
                and documents, recent failures -> ResearchPlan (name, hypothesis, motivation, plan)
    coder       the plan, the parent's file, the contract; on a repair, its last file and the
                probes it failed -> CandidateCode (the file in a ```python block, or JSON)
    analyst     the experiment's result beside its parents and the baselines -> typed findings
    judge       (optional) the design's code and idea -> a score in [0, 1] for fitness's
                qualitative term, which the metric cannot see

Every answer is validated against its schema (one repair re-ask, in `LLM.ask`); a role that still
fails raises LLMError, which the llm proposer (`proposers/llm.py`) turns into the experiment's ending.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from discover.agents import memory
from discover.agents.checkpoints import experiment_states
from discover.agents.llm import LLM, ContextTooLong
from discover.agents.llm_limits import shrink
from discover.experiments.contract import CONTRACT
from discover.knowledge_base.parents import make_policy
from discover.knowledge_base.schema import Architecture, Finding, Run
from discover.prompts.templates import render

if TYPE_CHECKING:
    from discover.agents.context import StudyContext
from discover.agents.verifications import verification_summaries

PARENTS = 2
ELITES = 5
RETRIEVED = 6
RECENT_FAILURES = 5
CODE_CHARS = 12_000  # longer parent files are cut: the prompt must leave room for the answer


class ResearchPlan(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{2,40}$", description="snake_case name of the design")
    hypothesis: str = Field(min_length=10, description="what should improve, and why")
    motivation: str = Field(min_length=10, description="the evidence and ideas it builds on")
    design_plan: str = Field(min_length=10, description="the mechanism, precisely enough to implement")


class CandidateCode(BaseModel):
    code: str = Field(min_length=50, description="the complete candidate Python file")


class JudgeScore(BaseModel):
    score: float = Field(ge=0.0, le=1.0, description="0: unsound or a copy; 1: sound, clean, promising")
    rationale: str = Field(min_length=10)


class FindingDraft(BaseModel):
    statement: str = Field(min_length=10)
    verdict: Literal["supports", "refutes", "inconclusive"]
    tags: list[str] = Field(default_factory=list, max_length=8)


class AnalystReport(BaseModel):
    findings: list[FindingDraft] = Field(min_length=1, max_length=5)


def task_info(study: StudyContext) -> dict[str, Any]:
    task = study.task
    return {
        "name": task.name, "description": task.description, "metric": task.metric,
        "higher_is_better": task.higher_is_better,
    }  # fmt: skip


def ask(
    llm: LLM, prompts: Path | None, role: str, context: dict[str, Any], schema: type[BaseModel],
    code_field: str | None = None,
):  # fmt: skip
    """The role's answer to its template (from `prompts` where that folder overrides it); with
    `code_field`, an answer in a ```python block fills that field. A prompt too long for the
    model's context is asked once more showing half as much (`llm_limits.shrink`)."""
    prompt = render(role, context, prompts)
    try:
        return llm.ask(role, [{"role": "user", "content": prompt}], schema, code_field=code_field)
    except ContextTooLong:
        shorter = render(role, shrink(context), prompts)
        return llm.ask(role, [{"role": "user", "content": shorter}], schema, code_field=code_field)


# ----------------------------------------------------------------------------- what roles are shown


def scored(study: StudyContext) -> list[tuple[Architecture, Run]]:
    """The study's successful screening runs, best first."""
    runs = [
        (architecture, run)
        for architecture, run in study.kb.study_runs(study.study_id, fidelity="screen")
        if run.status == "succeeded" and run.fitness is not None and math.isfinite(run.fitness)
    ]
    return sorted(runs, key=lambda pair: -pair[1].fitness)


def describe(architecture: Architecture, run: Run | None, code: bool = False) -> dict[str, Any]:
    return {
        "name": architecture.name,
        "fitness": run.fitness if run and run.fitness is not None else math.nan,
        "value": run.result.get("value", math.nan) if run else math.nan,
        "tasks": memory.task_values(run),
        "hypothesis": architecture.hypothesis,
        "motivation": architecture.motivation,
        "code": architecture.code[:CODE_CHARS] if code else "",
    }


def select_parents(study: StudyContext, number: int) -> list[str]:
    """Parents by UCT over the study's scored designs (baselines included): strong designs, and
    now and then a rarely expanded one."""
    population = study.kb.population(study.task.name, study.study_id)
    if not population:
        return []
    return list(dict.fromkeys(make_policy("uct").select(population, PARENTS, seed=number)))


def research_context(study: StudyContext, parent_ids: list[str]) -> dict[str, Any]:
    ranked = scored(study)
    best_run = {}
    for architecture, run in ranked:
        best_run.setdefault(architecture.id, (architecture, run))
    parents = [describe(*best_run[pid], code=True) for pid in parent_ids if pid in best_run]
    query = " ".join([study.task.description] + [parent["motivation"] for parent in parents])
    hits = study.kb.search(query[:2000], k=RETRIEVED)
    runs = study.kb.study_runs(study.study_id)
    # An attempt its experiment repaired into a design that trained did not fail for good.
    repaired = {a.experiment_id for a, run in runs if run.status == "succeeded" and a.experiment_id}
    failures = [
        f"{architecture.name}: {run.failure_reason}"
        for architecture, run in reversed(runs)
        if run.status in ("failed", "rejected") and run.failure_reason
        and architecture.experiment_id not in repaired
    ][:RECENT_FAILURES]  # fmt: skip
    motifs = memory.motif_findings(study)
    shown = {finding["id"] for finding in motifs["shown"]}
    hits = [hit for hit in hits if hit.ref_id not in shown]  # a motif finding shown once, with its interval
    refuted = [hit.text for hit in hits if hit.kind == "finding" and hit.verdict == "refutes"]
    states = experiment_states(study.folder)
    return {
        "task": task_info(study),
        "contract": CONTRACT,
        "baselines": [describe(a, r) for a, r in best_run.values() if a.origin == "baseline"],
        "parents": parents,
        "elites": [describe(a, r) for a, r in list(best_run.values())[:ELITES] if a.origin != "baseline"],
        "claims": [  # complete verifications only: an inconclusive one says nothing about the design
            claim.model_dump()
            for claim in verification_summaries(study.kb, study.study_id)
            if claim.status == "complete"
        ][-ELITES:],
        "motif_findings": motifs,
        "findings": [
            {"verdict": hit.verdict, "kind": hit.kind, "text": hit.text}
            for hit in hits
            if hit.kind == "finding"
        ],
        "documents": [{"title": hit.title, "text": hit.text} for hit in hits if hit.kind == "chunk"],
        "failures": failures + refuted[: max(0, RECENT_FAILURES - len(failures))],
        "tried": memory.tried_designs(study),
        "study_duplicates": memory.study_duplicates(states),
        "budget": memory.budget_left(study, states),
        "duplicates": [],  # this experiment's plans that repeated earlier designs (the graph fills it)
    }


# ----------------------------------------------------------------------------- the roles


def research(llm: LLM, prompts: Path | None, context: dict[str, Any]) -> ResearchPlan:
    return ask(llm, prompts, "researcher", context, ResearchPlan)


def write_candidate(
    study: StudyContext, llm: LLM, prompts: Path | None, plan: dict[str, Any], parent_id: str | None,
    previous: str | None, failures: list[dict],
) -> str:  # fmt: skip
    parent = study.kb.get(Architecture, parent_id) if parent_id else None
    context = {
        "task": task_info(study),
        "contract": CONTRACT,
        "proposal": plan,
        "parent": {"name": parent.name, "code": parent.code[:CODE_CHARS]} if parent else None,
        "verdict": {"failures": failures} if previous is not None else None,
        "previous_code": previous or "",
    }
    # The file comes in a ```python block, the way models write code; a JSON answer is taken too.
    answer: CandidateCode = ask(llm, prompts, "coder", context, CandidateCode, code_field="code")
    return answer.code


def analyze(
    study: StudyContext,
    llm: LLM,
    prompts: Path | None,
    architecture: Architecture,
    hypothesis: str,
    run: Run | None,
) -> list[Finding]:
    ranked = scored(study)
    parents = {pid: None for pid in architecture.parent_ids}
    baselines = {}
    for arch, arch_run in ranked:
        if arch.id in parents and parents[arch.id] is None:
            parents[arch.id] = describe(arch, arch_run)
        if arch.origin == "baseline":
            baselines.setdefault(arch.id, describe(arch, arch_run))
    context = {
        "task": task_info(study),
        "candidate": {"name": architecture.name, "hypothesis": hypothesis},
        "run": {
            "status": run.status if run else "not trained",
            "failure_reason": run.failure_reason if run else None,
            "value": run.result.get("value") if run and run.result else None,
            "tasks": memory.task_values(run),
            "fitness": run.fitness if run else None,
        },
        "verification": next(
            (
                row.model_dump()
                for row in reversed(study.kb.study_verifications(study.study_id))
                if row.architecture_id == architecture.id
            ),
            None,
        ),
        "parents": [parent for parent in parents.values() if parent is not None],
        "baselines": list(baselines.values()),
    }
    report: AnalystReport = ask(llm, prompts, "analyst", context, AnalystReport)
    evidence = [run.id] if run else []
    common = {"evidence_run_ids": evidence, "task": study.task.name, "study_id": study.study_id}
    return [
        study.kb.add_finding(draft.statement, draft.verdict, tags=["analyst", *draft.tags], **common)
        for draft in report.findings
    ]


def judge(
    study: StudyContext, llm: LLM, prompts: Path | None, architecture: Architecture, hypothesis: str, run: Run
) -> JudgeScore:
    baselines = {}
    for arch, arch_run in scored(study):
        if arch.origin == "baseline":
            baselines.setdefault(arch.id, describe(arch, arch_run))
    context = {
        "task": task_info(study),
        "candidate": {**describe(architecture, run, code=True), "hypothesis": hypothesis},
        "run": {"value": run.result.get("value", math.nan)},
        "baselines": list(baselines.values()),
    }
    return ask(llm, prompts, "judge", context, JudgeScore)
