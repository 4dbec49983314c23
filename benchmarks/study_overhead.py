"""Where a real study's device time goes: inside training steps, or around them.

Runs `discover run`'s study runner with the configuration `discover init` writes (mqar, its
screening and full fidelities, promotion and verification seeds, evolution, the `auto` sandbox)
until the budget is spent, then splits the charged device time into

- training steps: each run's time inside its training loop, from the harness's own per-interval
  throughput (metrics.jsonl);
- check jobs: the probes every experiment's design goes through before it trains;
- the rest of each training run: its three sandbox jobs' start-up (Python, torch, the sandbox),
  data, the prediction and audit jobs, and the study's bookkeeping.

Target (issue 21): <= 8% of the charged time outside training steps for a default CPU study.
Writes the `study-overhead` section of benchmarks/RESULTS.md.

    python -m benchmarks.study_overhead [--budget 30m] [--sandbox auto]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.results import machine, write_section
from discover.agents.config import StudyConfig
from discover.agents.context import fidelity_specs
from discover.agents.study import run_study
from discover.budget.jobs import CHECK_KEY
from discover.budget.ledger import replay
from discover.budget.store import DatabaseLedgerStore
from discover.experiments.tasks import get_task
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.select import choose_backend


@dataclass
class DeviceTime:
    """A study's charged device-seconds, split by where they went."""

    charged: float = 0.0
    check_seconds: list[float] = field(default_factory=list)  # one per check job
    # fidelity -> each run's seconds inside its training steps, and around them
    steps: dict[str, list[float]] = field(default_factory=dict)
    outside: dict[str, list[float]] = field(default_factory=dict)

    @property
    def in_steps(self) -> float:
        return sum(sum(seconds) for seconds in self.steps.values())

    @property
    def outside_share(self) -> float:
        return 1 - self.in_steps / self.charged

    def add(self, other: DeviceTime) -> None:
        self.charged += other.charged
        self.check_seconds += other.check_seconds
        for fidelity in other.steps:
            self.steps.setdefault(fidelity, []).extend(other.steps[fidelity])
            self.outside.setdefault(fidelity, []).extend(other.outside[fidelity])


def device_time(folder: Path) -> DeviceTime:
    """Read a finished study folder's ledger and runs."""
    study_id = json.loads((folder / "study.json").read_text())["study_id"]
    split = DeviceTime()
    with KnowledgeBase(folder / "knowledge.db", starter=None) as kb:
        accounts = replay(DatabaseLedgerStore(kb, study_id).entries())
        split.charged = accounts.spent
        split.check_seconds = [seconds for key, seconds in accounts.costs() if key == CHECK_KEY]
        for _, run in kb.study_runs(study_id):
            if run.cost_device_seconds is None:
                continue
            steps = 0.0
            if run.status == "succeeded" and run.metrics_path:
                task = get_task(run.task)
                tokens_per_batch = task.tokens_per_batch(task.config(run.result["config"]))
                steps = training_step_seconds(Path(run.metrics_path) / "metrics.jsonl", tokens_per_batch)
            split.steps.setdefault(run.fidelity, []).append(steps)
            split.outside.setdefault(run.fidelity, []).append(run.cost_device_seconds - steps)
    return split


def training_step_seconds(metrics: Path, tokens_per_batch: int) -> float:
    """Time inside the training loop, from the harness's per-interval throughput."""
    seconds, previous = 0.0, 0
    for line in metrics.read_text().splitlines():
        log = json.loads(line)
        seconds += (log["step"] - previous) * tokens_per_batch / log["tokens_per_s"]
        previous = log["step"]
    return seconds


def table(split: DeviceTime) -> str:
    """Per kind of job: count, median seconds in steps and around them, share of the charged total."""
    rows = ["| job | count | median in steps | median outside steps | share of charged time outside steps |",
            "|---|---|---|---|---|"]  # fmt: skip
    checks = split.check_seconds
    if checks:
        rows.append(f"| check | {len(checks)} | – | {statistics.median(checks):.1f} s | "
                    f"{sum(checks) / split.charged:.1%} |")  # fmt: skip
    for fidelity in split.steps:
        steps, outside = split.steps[fidelity], split.outside[fidelity]
        rows.append(
            f"| {fidelity} run | {len(steps)} | {statistics.median(steps):.1f} s | "
            f"{statistics.median(outside):.1f} s | {sum(outside) / split.charged:.1%} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="30m")
    parser.add_argument("--sandbox", default="auto", choices=["auto", "docker", "bwrap", "process"])
    args = parser.parse_args()
    choice = choose_backend(args.sandbox)
    config = StudyConfig.model_validate({"name": "overhead", "budget": args.budget, "proposer": "evolution"})
    with tempfile.TemporaryDirectory(prefix="discover-overhead-") as root:
        started = time.perf_counter()
        run_study(Path(root), config, choice.backend, say=lambda line: None)
        wall = time.perf_counter() - started
        split = device_time(Path(root))
    fidelity = "full" if "full" in split.outside else "screen"
    fixed = statistics.median(split.outside[fidelity])
    steps = {name: spec.steps for name, spec in fidelity_specs(config).items()}
    body = (
        "## Device time of a real study (`discover run` with `discover init`'s defaults)\n\n"
        f"Machine: {machine()}. Budget {args.budget}, sandbox {choice.why.split(':')[0]}, "
        f"{wall / 60:.0f} min wall; {config.task}, screening {steps['screen']} steps, promotion "
        f"of the top fifth ahead of the best baseline to {steps['full']} steps x "
        f"{config.promotion.seeds} seeds, evolution, reference baselines {', '.join(config.baselines)}.\n\n"
        + table(split) + "\n\n"
        f"Charged {split.charged:,.0f} device-seconds, {split.in_steps:,.0f} inside training steps: "
        f"**{split.outside_share:.1%} outside them** (target <= 8%). A run's time outside its steps is "
        f"a fixed cost (median {fixed:.1f} s for a {fidelity} run), so the share falls below 8% once runs "
        f"train for {fixed / 0.08:,.0f} s or more."
    )  # fmt: skip
    print(body)
    write_section("study-overhead", body)


if __name__ == "__main__":
    main()
