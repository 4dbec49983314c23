"""The study's leaderboard: one row per screened design, from the knowledge base alone (so
`discover run`, `discover status` and reports agree)."""

from __future__ import annotations

import math

from discover.agents.statistics import rank_correlation
from discover.agents.verifications import verification_summaries
from discover.knowledge_base.schema import Run
from discover.knowledge_base.store import KnowledgeBase


def recheck_fitness(run: Run) -> float:
    """A too-good recheck's fitness: 0 when it failed, which blocks promotion. Promotion, the
    leaderboard and the report all go by the lower of this and the design's own screening fitness."""
    return (run.fitness or 0.0) if run.status == "succeeded" else 0.0


def leaderboard(kb: KnowledgeBase, study_id: str, higher_is_better: bool) -> tuple[list[dict], float | None]:
    """One row per screened design, fittest first (a design the too-good gate rechecked by the lower
    of its two screening fitnesses), with its verification where it has one; and the
    rank correlation between screening fitness and mean full-fidelity metric over the designs
    trained at both, oriented (by the task's `higher_is_better`) so that +1 means they agree."""
    rows: dict[str, dict] = {}
    full: dict[str, list[float]] = {}
    rechecks: dict[str, float] = {}  # architecture id -> its too-good recheck's fitness (0: failed)
    for architecture, run in kb.study_runs(study_id):
        if "recheck_of" in run.result:
            rechecks[architecture.id] = recheck_fitness(run)
            continue
        if run.status != "succeeded" or "replication_of" in run.result:
            continue
        if run.fidelity == "full":
            full.setdefault(architecture.id, []).append(run.result["value"])
        elif run.fidelity != "screen":
            continue  # a ladder rung's run: the design page shows it
        elif architecture.id not in rows or (run.fitness or 0) > (rows[architecture.id]["fitness"] or 0):
            rows[architecture.id] = {
                "name": architecture.name, "origin": architecture.origin, "fitness": run.fitness,
                "screen_value": run.result["value"], "metric": run.result["metric"],
                "params": run.result["params"], "tokens_per_s": run.result["tokens_per_s"],
                "hypothesis": architecture.hypothesis, "motivation": architecture.motivation,
                "tasks": {task: part["value"] for task, part in run.result.get("parts", {}).items()},
            }  # fmt: skip
    for architecture_id, second in rechecks.items():  # promotion went by the lower of the two
        if (row := rows.get(architecture_id)) is not None:
            row["recheck_fitness"] = second
            row["fitness"] = min(row["fitness"] or 0.0, second)
    for architecture_id, values in full.items():
        if architecture_id in rows:
            rows[architecture_id]["full_mean"] = sum(values) / len(values)
            rows[architecture_id]["full_seeds"] = len(values)
    ranked = sorted(
        rows.values(), key=lambda row: -(row["fitness"] if row["fitness"] is not None else -math.inf)
    )
    for verification in verification_summaries(kb, study_id):  # oldest first: a design's latest wins
        if (row := rows.get(verification.architecture_id)) is not None:
            row["verification"] = verification.model_dump(
                include={"baseline", "status", "p_value", "q_value", "beats", "replication"}
            ) | {"seeds": len(verification.seeds)}
    both = [row for row in ranked if "full_mean" in row and row["fitness"] is not None]
    sign = 1.0 if higher_is_better else -1.0
    correlation = rank_correlation(
        [row["fitness"] for row in both], [sign * row["full_mean"] for row in both]
    )
    return ranked, correlation


def leaderboard_markdown(
    title: str, heading: str, spent_s: float, budget_s: float, rows: list[dict], correlation: float | None
) -> str:
    lines = [
        f"# {title}",
        "",
        f"{heading} Spent {spent_s / 3600:.3f} of {budget_s / 3600:.3f} device-hours.",
        "",
        "Fitness and screen metric are one-seed screening results, not claims. Only a verification",
        "(paired seeds, q-value at most alpha) decides how a design compares with a baseline.",
        "Tokens/s is per second of the job's CPU time on a CPU host (so other work on the host",
        "cannot lower it), per wall-clock second on a GPU.",
        "",
        "| # | design | origin | fitness (1 seed) | screen metric | full mean (seeds) | verification "
        "| params | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, row in enumerate(rows, 1):
        full = f"{row['full_mean']:.4f} ({row['full_seeds']})" if "full_mean" in row else ""
        fitness = f"{row['fitness']:.3f}" if row["fitness"] is not None else ""
        screen = f"{row['metric']} {row['screen_value']:.4f}"
        if row.get("tasks"):  # a suite: each task's value after the mean
            screen += " (" + ", ".join(f"{task} {value:.3f}" for task, value in row["tasks"].items()) + ")"
        lines.append(
            f"| {index} | {row['name']} | {row['origin']} | {fitness} | {screen} "
            f"| {full} | {verification_text(row)} | {row['params']:,} | {row['tokens_per_s']:,.0f} |"
        )
    if correlation is not None:
        lines += [
            "",
            f"Spearman rank correlation of screening fitness with full-fidelity metric: {correlation:+.2f}.",
        ]
    return "\n".join(lines) + "\n"


def verification_text(row: dict) -> str:
    """A leaderboard row's verification in a few words: the only place a design is said to win."""
    verification = row.get("verification")
    if verification is None:
        return ""
    if verification["status"] != "complete":
        return "inconclusive (a seed failed)"
    verdict = f"beats {verification['baseline']}" if verification["beats"] else "not shown better"
    replication = f"; replication: {verification['replication']}" if verification["replication"] else ""
    return f"{verdict} (q = {verification['q_value']:.3g}, {verification['seeds']} seeds{replication})"
