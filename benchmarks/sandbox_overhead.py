"""Per-job sandbox overhead for each backend: everything a job costs besides its training steps.

    python -m benchmarks.sandbox_overhead [--jobs 5]

Each job is a one-step `fit` of a built-in baseline. overhead = job wall time (execute() start to
teardown done) - the time the harness itself measured inside the job. The `process` backend is the
floor every backend shares (interpreter start, importing torch); the isolation cost of a backend is
its overhead minus that floor. Isolating backends are measured again with the lm task's held-out
files hidden (an empty file mounted over each: what every lm job pays). Writes the
`sandbox-overhead` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.results import machine, write_section
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import FitSummary
from discover.experiments.tasks import get_task
from discover.sandbox.base import Job, Limits, prepare_job_dir, read_output
from discover.sandbox.bwrap import BwrapBackend, bwrap_available
from discover.sandbox.docker import DockerBackend, docker_available
from discover.sandbox.process import ProcessBackend

SETTINGS = {"steps": 1, "log_every": 1, "batch_size": 4}


def overheads(backend, jobs: int, workdir: Path, hidden_paths: list[str] | None = None) -> list[float]:
    source = builtin_baselines()["linear_attention"].read_text()
    seconds = []
    for index in range(jobs + 1):  # the first job warms caches and is dropped
        job = Job(
            job_id=f"{backend.name}-{index}",
            action="fit",
            task="mqar",
            settings=SETTINGS,
            trusted=True,
            hidden_paths=hidden_paths or [],
            limits=Limits(timeout_s=300),
        )
        job_dir, out_dir = prepare_job_dir(job, source, workdir)
        started = time.perf_counter()
        outcome = backend.execute(job, job_dir, out_dir)
        wall = time.perf_counter() - started
        if outcome.status != "ok":
            raise SystemExit(f"{backend.name} job failed: {outcome.reason}")
        inner = read_output(out_dir, "fit.json", FitSummary).wall_time_s
        if index:
            seconds.append(wall - inner)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    backends = [ProcessBackend()]
    notes = []
    for available, make in ((bwrap_available, BwrapBackend), (docker_available, DockerBackend)):
        ok, why = available()
        if ok:
            backends.append(make())
        else:
            notes.append(f"skipped: {why}")
    lm = get_task("lm")
    hidden = lm.heldout_files(lm.config({}))
    with tempfile.TemporaryDirectory() as workdir:
        results = {b.name: overheads(b, args.jobs, Path(workdir)) for b in backends}
        with_hidden = {b.name: overheads(b, args.jobs, Path(workdir), hidden) for b in backends[1:]}
    floor = statistics.median(results["process"])
    rows = []
    for name, s in results.items():
        hiding = (
            f"{statistics.median(with_hidden[name]) - statistics.median(s):+.2f} s"
            if name in with_hidden
            else "–"
        )
        rows.append(
            f"| {name} | {statistics.median(s):.2f} s | {min(s):.2f}–{max(s):.2f} s | "
            f"{statistics.median(s) - floor:+.2f} s | {hiding} |"
        )
    body = (
        "## Sandbox overhead per job\n\n"
        f"Machine: {machine()}. {args.jobs} one-step fit jobs per backend after one warm-up job. "
        "Overhead = job wall time minus the harness's own measured time inside the job: interpreter "
        "start, imports, mounts, container create/start/remove. Isolation cost = overhead minus the "
        "process backend's (the floor every backend pays). Target: isolation cost <= 1 s. Last column: "
        f"what hiding the lm task's {len(hidden)} held-out files adds (medians; the process backend runs "
        "trusted code only and hides nothing).\n\n"
        "| backend | overhead (median) | range | isolation cost | lm held-out files hidden |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
    )
    if notes:
        body += "\n\n" + "; ".join(notes)
    print(body)
    write_section("sandbox-overhead", body)


if __name__ == "__main__":
    main()
