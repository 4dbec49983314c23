"""What a report shows, read from a study folder alone: one `StudyView` holding a `DesignView` per
design (baselines included). Everything here is plain data; `plots` draws it and `site` renders it."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlmodel import select

from discover.agents.config import study_suite
from discover.agents.leaderboard import recheck_fitness
from discover.agents.statistics import mean_interval
from discover.agents.status import RunSummary, StudyStatus, open_study, run_purpose, study_status
from discover.agents.verifications import VerificationSummary
from discover.budget.ledger import replay
from discover.budget.store import DatabaseLedgerStore
from discover.experiments.suite import Suite
from discover.knowledge_base.schema import Architecture, Finding, LLMCall, Run

EFFICIENCY = ("params", "flops_per_token", "tokens_per_s", "peak_memory_mb")


class CurvePoint(BaseModel):
    step: int
    train_loss: float


class RunView(RunSummary):
    efficiency: dict[str, int | float]  # params, flops_per_token, tokens_per_s, peak_memory_mb when trained
    curve: list[CurvePoint]


class FullFidelity(BaseModel):
    values: list[float]
    mean: float
    interval: tuple[float, float] | None  # bootstrap interval of the mean; None under 3 seeds
    task_means: dict[str, float] = {}  # on a suite: each task's mean value over the same runs


class DesignView(BaseModel):
    id: str
    slug: str  # file-name-safe id: names are LLM-written and never become paths
    name: str
    origin: str
    created_at: datetime
    hypothesis: str
    motivation: str
    code: str
    parents: list[tuple[str, str]]  # (slug, name)
    children: list[tuple[str, str]]
    diff: list[tuple[str, str]]  # (kind, line) of a unified diff against the first parent's code
    runs: list[RunView]
    screen: dict | None  # the best successful screening run's result
    screen_fitness: float | None  # the lower of it and the too-good recheck's, when rechecked
    recheck_fitness: float | None  # the too-good recheck's (0 when it failed); None: not rechecked
    verifications: list[VerificationSummary]  # its claims tested, oldest first, replications inside
    awaiting_verification: bool  # promoted, but the budget left could not verify it
    full: FullFidelity | None
    probes: list[dict]  # {name, passed, reason} of the last check, when recorded
    judge: dict | None
    findings: list[dict]
    cost_s: float  # device-seconds of its training runs
    llm_usd: float | None  # LLM dollars of the experiment that proposed it; None without one

    @property
    def is_baseline(self) -> bool:
        return self.origin == "baseline"


class DiscoveryPoint(BaseModel):
    device_hours: float  # spent when this screening result came in
    best_fitness: float
    verified_claims: int  # designs so far verified as beating the best baseline (`agents/claims.py`)


class LLMSpend(BaseModel):
    """What one role's model cost the study."""

    role: str
    model: str
    requests: int = 0  # HTTP requests, each retry one
    errors: dict[str, int] = {}  # kind (rate_limited, server_error, timeout, refused, ...) -> requests
    malformed: int = 0  # replies that gave no usable answer (noted; no request of their own)
    tokens: int = 0
    usd: float = 0.0


class StudyView(BaseModel):
    folder: str
    status: StudyStatus
    metric: str
    higher_is_better: bool
    tasks: list[str]  # the suite's tasks, whose metrics each design page shows; one name for a single task
    reference: tuple[str, dict[str, float]] | None  # the best baseline's screening value on each task
    designs: list[DesignView]  # leaderboard order (baselines among them), then unscreened designs
    discovery: list[DiscoveryPoint]
    spend_s: dict[str, float]  # device-seconds by kind of job
    llm_costs: list[LLMSpend]  # by role and model
    findings: list[dict]
    origins: list[str]  # of the proposed designs, for the proposer comparison

    def design(self, slug: str) -> DesignView:
        return next(design for design in self.designs if design.slug == slug)


def slug(architecture_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", architecture_id)[:64] or "design"


def read_curve(run: Run) -> list[CurvePoint]:
    """The run's logged training loss; empty when its metrics file is gone or unreadable."""
    if not run.metrics_path:
        return []
    points = []
    folder = Path(run.metrics_path)
    # A suite's run keeps one file per task: its curve is the first task's.
    files = [folder / "metrics.jsonl", *sorted(folder.glob("*/metrics.jsonl"))]
    try:
        lines = next((file for file in files if file.exists()), files[0]).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    for line in lines:
        try:
            entry = json.loads(line)
            point = CurvePoint(step=int(entry["step"]), train_loss=float(entry["train_loss"]))
        except (ValueError, KeyError, TypeError):
            continue
        if math.isfinite(point.train_loss):
            points.append(point)
    return points


def code_diff(parent_code: str, code: str, parent_name: str, name: str) -> list[tuple[str, str]]:
    lines = difflib.unified_diff(
        parent_code.splitlines(), code.splitlines(), fromfile=parent_name, tofile=name, lineterm=""
    )
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    return [
        (kinds.get(line[:1], "same") if not line.startswith(("+++", "---")) else "file", line)
        for line in lines
    ]


def reference_by_task(
    pairs: list[tuple[Architecture, Run]], suite: Suite
) -> tuple[str, dict[str, float]] | None:
    """On a suite, the best baseline's name and its screening value on each task (None on one task)."""
    if suite.single:
        return None
    screened = [
        (architecture.name, run.result)
        for architecture, run in pairs
        if architecture.origin == "baseline" and run.fidelity == "screen" and run.status == "succeeded"
        and "parts" in run.result and "recheck_of" not in run.result
    ]  # fmt: skip
    best = None
    for name, result in screened:
        if best is None or suite.better(result["value"], best[1]["value"]):
            best = (name, result)
    if best is None:
        return None
    return best[0], {task: part["value"] for task, part in best[1]["parts"].items()}


def load_study(folder: Path) -> StudyView:
    status = study_status(folder)
    record, kb = open_study(folder)
    task = study_suite(folder, record.task)
    with kb:
        pairs = kb.study_runs(record.study_id)
        with kb.reading() as session:
            proposed = session.exec(
                select(Architecture).where(Architecture.study_id == record.study_id)
            ).all()
            findings = session.exec(select(Finding).where(Finding.study_id == record.study_id)).all()
            calls = session.exec(select(LLMCall).where(LLMCall.study_id == record.study_id)).all()
            known = {architecture.id: architecture for architecture in proposed}
            known |= {architecture.id: architecture for architecture, _ in pairs}
            parent_ids = {pid for architecture in known.values() for pid in architecture.parent_ids}
            missing = parent_ids - known.keys()
            if missing:  # parents from another study of the same knowledge base
                outside = select(Architecture).where(Architecture.id.in_(missing))
                known |= {architecture.id: architecture for architecture in session.exec(outside)}
        charged = replay(DatabaseLedgerStore(kb, record.study_id).entries()).charged  # in charge order
        claims = {
            row.architecture_id: row.seeds
            for row in kb.study_verifications(record.study_id)
            if row.beats and row.replicates is None
        }

    runs_by_design: dict[str, list[Run]] = defaultdict(list)
    for architecture, run in pairs:
        runs_by_design[architecture.id].append(run)
    finding_rows = [
        {
            "statement": finding.statement, "verdict": finding.verdict, "tags": finding.tags,
            "effect": finding.effect_size, "low": finding.effect_low, "high": finding.effect_high,
            "runs": set(finding.evidence_run_ids),
        }
        for finding in sorted(findings, key=lambda finding: finding.created_at)
    ]  # fmt: skip
    children: dict[str, list[str]] = defaultdict(list)
    for architecture in known.values():
        for parent_id in architecture.parent_ids:
            children[parent_id].append(architecture.id)

    llm_usd: dict[str, float] = defaultdict(float)
    for call in calls:
        if call.experiment_id is not None:
            llm_usd[call.experiment_id] += call.cost_usd
    designs = {
        architecture.id: design_view(
            architecture,
            runs_by_design[architecture.id],
            known,
            children,
            finding_rows,
            llm_usd.get(architecture.experiment_id or ""),
            [row for row in status.verifications if row.architecture_id == architecture.id],
        )
        for architecture in known.values()
        if architecture.id in runs_by_design or architecture.study_id == record.study_id
    }
    ranked = [row["name"] for row in status.leaderboard]
    order = {name: index for index, name in enumerate(ranked)}

    def place(design: DesignView) -> tuple:
        return (order.get(design.name, len(order)), design.is_baseline, design.name)

    return StudyView(
        folder=str(folder.resolve()), status=status, metric=task.metric,
        higher_is_better=task.higher_is_better, tasks=task.task_names,
        reference=reference_by_task(pairs, task),
        designs=sorted(designs.values(), key=place),
        discovery=discovery_curve(pairs, charged, claims),
        spend_s=spend_by_kind(pairs, charged), llm_costs=llm_costs(calls),
        findings=[{key: value for key, value in row.items() if key != "runs"} for row in finding_rows],
        origins=sorted({a.origin for a in known.values() if a.study_id == record.study_id}),
    )  # fmt: skip


def design_view(
    architecture: Architecture,
    runs: list[Run],
    known: dict[str, Architecture],
    children: dict[str, list[str]],
    findings: list[dict],
    llm_usd: float | None,
    verifications: list[VerificationSummary],
) -> DesignView:
    screened = [  # its own screening runs: a too-good recheck is shown beside them, not instead
        run
        for run in runs
        if run.fidelity == "screen" and run.status == "succeeded" and "recheck_of" not in run.result
    ]
    best = max(screened, key=lambda run: run.fitness or 0.0, default=None)
    rechecks = [run for run in runs if "recheck_of" in run.result]
    recheck = recheck_fitness(rechecks[-1]) if rechecks else None
    screen_fitness = best.fitness if best else None
    if screen_fitness is not None and recheck is not None:
        screen_fitness = min(screen_fitness, recheck)
    full_runs = [
        run.result
        for run in runs
        if run.fidelity == "full" and run.status == "succeeded" and "replication_of" not in run.result
    ]
    full_values = [result["value"] for result in full_runs]
    full = None
    if full_values:
        tasks = full_runs[0].get("parts", {}).keys()
        full = FullFidelity(
            values=full_values,
            mean=math.fsum(full_values) / len(full_values),
            interval=mean_interval(full_values),
            task_means={
                task: math.fsum(result["parts"][task]["value"] for result in full_runs) / len(full_runs)
                for task in tasks
            },
        )
    parents = [known[pid] for pid in architecture.parent_ids if pid in known]
    diff = (
        code_diff(parents[0].code, architecture.code, parents[0].name, architecture.name) if parents else []
    )
    last_screen = next((run for run in reversed(runs) if run.fidelity == "screen"), None)
    probes = (last_screen.result.get("probes", []) if last_screen else []) or []
    run_ids = {run.id for run in runs}
    return DesignView(
        id=architecture.id, slug=slug(architecture.id), name=architecture.name, origin=architecture.origin,
        created_at=architecture.created_at, hypothesis=architecture.hypothesis,
        motivation=architecture.motivation, code=architecture.code,
        parents=[(slug(parent.id), parent.name) for parent in parents],
        children=[(slug(cid), known[cid].name) for cid in children.get(architecture.id, [])],
        diff=diff,
        runs=[
            RunView(
                id=run.id, fidelity=run.fidelity, purpose=run_purpose(run), seed=run.seed, status=run.status,
                value=run.result.get("value"), fitness=run.fitness, failure_reason=run.failure_reason,
                cost_device_seconds=run.cost_device_seconds, curve=read_curve(run),
                efficiency={key: run.result[key] for key in EFFICIENCY if key in run.result},
            )
            for run in runs
        ],
        screen=best.result if best else None, screen_fitness=screen_fitness, recheck_fitness=recheck,
        verifications=verifications, full=full,
        awaiting_verification=not verifications and any("awaiting_verification" in r.result for r in runs),
        probes=probes, judge=best.result.get("judge") if best else None,
        findings=[
            {key: value for key, value in finding.items() if key != "runs"}
            for finding in findings
            if finding["runs"] & run_ids
        ],
        cost_s=math.fsum(run.cost_device_seconds or 0.0 for run in runs), llm_usd=llm_usd,
    )  # fmt: skip


def discovery_curve(
    pairs: list[tuple[Architecture, Run]], charged: dict[str, float], claims: dict[str, list[int]]
) -> list[DiscoveryPoint]:
    """Best screening fitness, and the number of verified claims (`claims`: the architectures whose
    verification beats the best baseline, with its seeds), against the device-hours charged when
    each came in: a claim when the last of its full-fidelity runs was charged. `charged` is the
    ledger replay's job id -> charge, in the order charged: the order of events. A one-seed
    screening result moves the fitness line only; it is never counted as a win."""
    runs = {run.id: (architecture, run) for architecture, run in pairs}
    spent, best = 0.0, -math.inf
    verified_seeds: dict[str, set[int]] = defaultdict(set)
    points = []
    for job_id, seconds in charged.items():
        spent += seconds
        architecture, run = runs.get(job_id, (None, None))
        if architecture is None or architecture.origin == "baseline" or run.status != "succeeded":
            continue
        if run.fidelity == "screen":
            best = max(best, run.fitness or 0.0)
        elif architecture.id in claims and run.seed in claims[architecture.id]:
            verified_seeds[architecture.id].add(run.seed)
        else:
            continue
        verified = sum(seeds == set(claims[arch]) for arch, seeds in verified_seeds.items())
        points.append(
            DiscoveryPoint(device_hours=spent / 3600, best_fitness=max(best, 0.0), verified_claims=verified)
        )
    return points


def spend_by_kind(pairs: list[tuple[Architecture, Run]], charged: dict[str, float]) -> dict[str, float]:
    """Charged device-seconds (the ledger replay's job id -> charge) split into baselines, screening,
    full-fidelity verification and probes."""
    kinds = {
        run.id: "baselines" if architecture.origin == "baseline" else
        ("screening" if run.fidelity == "screen" else "verification")
        for architecture, run in pairs
    }  # fmt: skip
    spend: dict[str, list[float]] = defaultdict(list)
    for job_id, seconds in charged.items():
        spend[kinds.get(job_id, "probes")].append(seconds)
    return {kind: math.fsum(seconds) for kind, seconds in spend.items()}


def llm_costs(calls: list[LLMCall]) -> list[LLMSpend]:
    """The costs table's rows, one per role and model, in that order."""
    rows: dict[tuple[str, str], LLMSpend] = {}
    for call in calls:
        row = rows.setdefault((call.role, call.model), LLMSpend(role=call.role, model=call.model))
        if call.kind == "note":  # a reply that did not parse: its request is counted already
            row.malformed += 1
            continue
        row.requests += 1
        row.tokens += call.prompt_tokens + call.completion_tokens
        row.usd += call.cost_usd
        if call.status != "ok":
            outcome = call.error_kind or call.status  # a refusal, or an error recorded without a kind
            row.errors[outcome] = row.errors.get(outcome, 0) + 1
    return [rows[key] for key in sorted(rows)]
