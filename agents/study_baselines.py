"""A study's baselines: stored on first use, screened once, and the reference every fitness is
measured against."""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import select

from discover.agents.context import StudyContext
from discover.agents.record import StudyError
from discover.agents.runs import check_job, train_and_record, unused_job_id, vet_architecture
from discover.budget.jobs import OutOfBudget
from discover.experiments.baselines import builtin_baselines
from discover.experiments.suite import result_from
from discover.knowledge_base.schema import Architecture, Baseline
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.runner import BUDGET_SPENT


def baseline_architecture(kb: KnowledgeBase, name: str) -> Architecture:
    """The stored baseline `name`; a built-in one is stored on first use."""
    with kb.reading() as session:
        baseline = session.exec(select(Baseline).where(Baseline.name == name)).first()
    if baseline is None:
        builtins = builtin_baselines()
        if name not in builtins:
            raise StudyError(
                f"no baseline named {name!r}: built-ins are {', '.join(builtins)}; add your own "
                "with `discover baseline add FILE --name NAME`"
            )
        baseline = kb.add_baseline(name, builtins[name].read_text(), "builtin")
    architecture = kb.get(Architecture, baseline.architecture_id)
    assert architecture is not None
    return architecture


def record_functional_hash(study: StudyContext, architecture: Architecture) -> None:
    """Probe the baseline once (a budgeted check job) for its functional hash, so that a design
    computing the same function is recognised as a duplicate of it."""
    if architecture.functional_hash is not None:
        return
    candidate = vet_architecture(study, architecture)
    job_id = unused_job_id(study, f"baseline-{architecture.name}-check-0")
    try:
        charged = check_job(study, candidate, job_id)
    except OutOfBudget:
        return  # the screening run below says what the budget cannot cover
    if charged.value is not None and charged.value.functional_hash:
        study.kb.set_functional_hash(architecture.id, charged.value.functional_hash)


def train_baselines(study: StudyContext, say: Callable[[str], None]) -> str | None:
    """Screen the configured baselines once per study, then score them against the best of them.
    Returns why the study cannot go on when the budget ran out first (None when it can); raises
    StudyError when no baseline could be trained for another reason."""
    out_of_budget = None
    for name in study.config.baselines:
        architecture = baseline_architecture(study.kb, name)
        runs = [
            run for arch, run in study.kb.study_runs(study.study_id, "screen") if arch.id == architecture.id
        ]
        if any(run.status == "succeeded" for run in runs):
            continue
        say(f"training baseline {name} at screening fidelity")
        record_functional_hash(study, architecture)
        run = train_and_record(study, architecture, "screen", study.config.seed)
        if run is None:
            out_of_budget = f"the budget left cannot cover training baseline {name}"
            break
        if run.status != "succeeded":
            say(f"baseline {name} failed: {run.failure_reason}")
            if BUDGET_SPENT in (run.failure_reason or ""):
                out_of_budget = f"the budget was spent while training baseline {name}"
                break
    reference = study.reference("screen")
    if reference is None:
        if out_of_budget:
            return f"{out_of_budget}, before any baseline finished (raise it with --resume --budget)"
        raise StudyError("no baseline could be trained, so nothing can be scored; see the messages above")
    for arch, run in study.kb.study_runs(study.study_id, "screen"):
        if arch.origin == "baseline" and run.status == "succeeded":
            score = study.score(result_from(run.result), reference[1]).value
            study.kb.update_run(run.id, fitness=score)
    return None
