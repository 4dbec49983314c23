"""How discover's scheduler scales: the device pool, the budget ledger (in the study's SQLite
knowledge base) and the Ray executor, with jobs of known duration.

- real: a local Ray cluster; `workers` threads each run jobs through `BudgetedJobs.run` (lease a slot,
  reserve in the ledger, run, charge), where a job is a Ray task that sleeps `--job-s` seconds.
  Throughput at 1, 2 and 8 workers, the speed-up over 1 (target: 8 workers >= 7.6x) and the
  scheduler's overhead per job: (workers x wall - jobs x job time) / jobs.
- simulated: the same pool, ledger and cost estimator, driven by a discrete-event loop on a
  simulated clock, for 64 and 512 GPUs and jobs of ~10 minutes: experiments per hour, GPU
  utilisation, and the real time the scheduler spent per job.

Writes the `scaling` section of benchmarks/RESULTS.md.

    python -m benchmarks.scaling
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path

from benchmarks.results import machine, write_section
from discover.budget.estimate import CostEstimator
from discover.budget.jobs import BudgetedJobs
from discover.budget.ledger import Budget, Ledger
from discover.budget.store import DatabaseLedgerStore
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.pool import DevicePool

UNLIMITED = Budget(text="1000000gpuh", device_seconds=3.6e9)


def scheduler(folder: Path, slots: list[str], default_s: float) -> tuple[KnowledgeBase, BudgetedJobs]:
    """A study's budgeted jobs with their real pool, ledger and estimator; nothing else is needed."""
    kb = KnowledgeBase(folder / "knowledge.db", starter=None)
    ledger = Ledger(UNLIMITED, DatabaseLedgerStore(kb, "bench"))
    return kb, BudgetedJobs(ledger, CostEstimator(default_seconds=default_s), DevicePool(slots))


def real_throughput(workers: int, jobs_per_worker: int, job_s: float) -> tuple[float, float]:
    """(jobs per hour, scheduler overhead per job in seconds) through BudgetedJobs.run and Ray."""
    import ray

    @ray.remote(num_cpus=1)
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    jobs = workers * jobs_per_worker
    numbers = count()
    with tempfile.TemporaryDirectory() as folder:
        kb, budgeted = scheduler(Path(folder), [f"cpu:{index}" for index in range(workers)], job_s)

        def worker() -> None:
            while (number := next(numbers)) < jobs:
                budgeted.run(f"job-{number}", "sleep", 0, lambda device: ray.get(sleep.remote(job_s)))

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(worker) for _ in range(workers)]:
                future.result()
        wall = time.perf_counter() - started
        assert math.isclose(budgeted.ledger.spent, sum(seconds for _, seconds in budgeted.ledger.costs()))
        kb.close()
    return jobs / wall * 3600, (workers * wall - jobs * job_s) / jobs


def simulate(gpus: int, jobs: int, mean_s: float, seed: int = 0) -> dict[str, float]:
    """Discrete-event run of the real pool, ledger and estimator on a simulated clock."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        kb, budgeted = scheduler(Path(folder), [f"cuda:{index}" for index in range(gpus)], mean_s)
        clock, busy, scheduler_s = 0.0, 0.0, 0.0
        running: list[tuple[float, str, object, float]] = []
        started = done = 0
        while done < jobs:
            tick = time.perf_counter()
            while started < jobs and (lease := budgeted.pool.acquire(timeout=0)) is not None:
                job_id = f"job-{started}"
                assert budgeted.ledger.reserve(job_id, budgeted.estimator.estimate("job", mean_s), "job")
                duration = rng.lognormvariate(math.log(mean_s), 0.3)
                heapq.heappush(running, (clock + duration, job_id, lease, duration))
                started += 1
            scheduler_s += time.perf_counter() - tick
            clock, job_id, lease, duration = heapq.heappop(running)
            tick = time.perf_counter()
            budgeted.estimator.observe("job", budgeted.ledger.charge(job_id, duration, devices=1))
            lease.release()  # type: ignore[attr-defined]
            scheduler_s += time.perf_counter() - tick
            busy += duration
            done += 1
        kb.close()
    return {
        "jobs_per_hour": jobs / clock * 3600,
        "utilisation": busy / (gpus * clock),
        "scheduler_ms_per_job": scheduler_s / jobs * 1000,
        "real_s": scheduler_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-s", type=float, default=2.0, help="Duration of a real job.")
    parser.add_argument("--jobs-per-worker", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sim-jobs-per-gpu", type=int, default=8)
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False, configure_logging=False)
    real = {}
    for workers in (1, 2, 8):
        runs = [real_throughput(workers, args.jobs_per_worker, args.job_s) for _ in range(args.repeats)]
        real[workers] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        print(
            f"real, {workers} worker(s): {real[workers][0]:.0f} jobs/h, overhead {real[workers][1]:.3f} s/job"
        )
    ray.shutdown()
    simulated = {}
    for gpus in (64, 512):
        simulated[gpus] = simulate(gpus, gpus * args.sim_jobs_per_gpu, mean_s=600.0)
        print(f"simulated, {gpus} GPUs: {simulated[gpus]}")

    lines = [
        "## Scheduler scaling (`BudgetedJobs.run`: device pool, SQLite budget ledger, Ray executor)",
        "",
        f"Machine: {machine()}. `python -m benchmarks.scaling` (medians of {args.repeats} repeats).",
        "",
        f"Real: a local Ray cluster (8 CPU slots); each job is a Ray task sleeping {args.job_s:g} s, run",
        f"through `BudgetedJobs.run` by `workers` threads, {args.jobs_per_worker} jobs per worker.",
        "",
        "| workers | jobs/hour | speed-up over 1 | scheduler overhead per job |",
        "|---|---|---|---|",
    ]
    for workers, (rate, overhead) in real.items():
        lines.append(f"| {workers} | {rate:,.0f} | {rate / real[1][0]:.2f}x | {overhead * 1000:.0f} ms |")
    lines += [
        "",
        f"Target: 8 workers >= 7.6x the throughput of 1; measured {real[8][0] / real[1][0]:.2f}x.",
        "",
        "Simulated: the same pool, ledger and estimator on a simulated clock;",
        f"{args.sim_jobs_per_gpu} jobs per GPU, durations log-normal around 10 minutes (sigma 0.3).",
        "",
        "| GPUs | jobs | experiments/hour (simulated) | GPU utilisation | scheduler time per job (real) |",
        "|---|---|---|---|---|",
    ]
    for gpus, result in simulated.items():
        lines.append(
            f"| {gpus} | {gpus * args.sim_jobs_per_gpu:,} | {result['jobs_per_hour']:,.0f} "
            f"| {result['utilisation']:.1%} | {result['scheduler_ms_per_job']:.1f} ms |"
        )
    lines += [
        "",
        "Utilisation is below 100% because a fixed batch of jobs drains: in the last wave GPUs fall idle",
        "with nothing left to start. The scheduler's time per job no longer grows with the ledger: when",
        "the database ledger re-read every entry on each decision it took 4.7 ms per job at 64 jobs and",
        "20.5 ms at 512 (this simulation, 8 and 64 GPUs); it now reads only the entries added since.",
    ]
    write_section("scaling", "\n".join(lines))


if __name__ == "__main__":
    main()
