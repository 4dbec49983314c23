"""The only way discover executes candidate code: probes and training, each in a sandbox job.

    sandbox = Sandbox(choose_backend("auto").backend, workdir=Path("study/jobs"))
    candidate = vet(Path("cand.py"))  # once; see `discover.vetting.candidate`
    verdict = sandbox.check(candidate, RunSpec.resolve("mqar"))
    result = sandbox.train(candidate, RunSpec.resolve("mqar", {"steps": 500}, seed=0), run_dir=Path("runs/x"))

Training is three jobs: `fit` (no held-out data) writes weights; `predict`, a fresh sandboxed
process, loads them and writes logits for the held-out inputs; a second `predict` on the same
inputs with their futures scrambled audits that those logits are causal
(`discover.vetting.heldout`). The metric is computed here, from the logits and targets that never
entered a sandbox. A candidate comes vetted (`discover.vetting.candidate`): a file the static check
refused gets no job at all, and every job runs the source that was vetted. Every output is read
back with size limits and validated; nothing a job writes is trusted as-is.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import torch
from pydantic import ValidationError

from discover.experiments.files import write_json_atomic
from discover.experiments.harness import FitSummary, StepLog, TrainResult, combine
from discover.experiments.probes import ProbeResult, Verdict
from discover.experiments.runspec import RunSpec
from discover.sandbox import quota
from discover.sandbox.base import (
    Backend,
    Job,
    JobOutcome,
    Limits,
    OutputError,
    lease_path,
    prepare_job_dir,
    read_output,
    strip_special_bits,
)
from discover.sandbox.lease import LEASES
from discover.sandbox.pool import slot_device
from discover.vetting.candidate import VettedCandidate
from discover.vetting.heldout import (
    HeldoutError,
    audit_inputs,
    audit_violation,
    check_audit_inputs,
    read_logits,
    read_weights,
)

CHECK_TIMEOUT_S = 600.0
MIN_JOB_S = 1.0  # a job with less time than this before its deadline is not started
BUDGET_SPENT = "stopped at the budget's ceiling: its share of the budget was spent"
CHECK_AUDIT_ROWS = 8  # training rows, and as many scrambled copies
MAX_METRICS_BYTES = 64 << 20


class JobFailed(Exception):
    """A sandbox job that did not produce a valid result; `outcome.reason` says why in one line."""

    def __init__(self, outcome: JobOutcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class Sandbox:
    def __init__(
        self,
        backend: Backend,
        workdir: Path,
        limits: Limits | None = None,
        study_id: str = "adhoc",
        static_check: bool = True,  # False: ignore the violations (tests that prove the sandbox holds)
        heldout_seed: int | None = None,
    ):
        self.backend = backend
        self.workdir = workdir
        self.limits = limits or Limits()
        self.study_id = study_id
        self.static_check = static_check
        # Generated held-out sets (MQAR's) come from a seed no job is told, so a candidate cannot
        # regenerate the answers with the task's own code. A study keeps one seed for all its runs.
        self.heldout_seed = secrets.randbelow(2**62) if heldout_seed is None else heldout_seed

    def heldout_seed_of(self, draw: int) -> int:
        """The secret seed of held-out set number `draw`: 0 is the study's own, every other a fresh
        set for rechecks and replications (derived, so `discover reproduce` can draw it again)."""
        if draw == 0:
            return self.heldout_seed
        return int.from_bytes(hashlib.sha256(f"{self.heldout_seed}:{draw}".encode()).digest()[:8]) % 2**62

    def refuses(self, candidate: VettedCandidate) -> bool:
        """Whether the candidate's vetting forbids running it at all (the static check refused it)."""
        return self.static_check and candidate.refused

    def check(
        self,
        candidate: VettedCandidate,
        spec: RunSpec,
        job_id: str | None = None,
        deadline: float | None = None,
    ) -> Verdict:
        if self.refuses(candidate):
            # Refused before anything runs; still a verdict, so people and the coder agent see why.
            reason = "; ".join(str(v) for v in candidate.violations[:3])
            probe = ProbeResult(name="static_check", passed=False, reason=reason)
            return Verdict(candidate=candidate.name, task=spec.task.name, passed=False, probes=[probe])
        job = self._job(
            "check", spec.with_seed(0), "cpu", candidate.trusted, job_id, deadline, CHECK_TIMEOUT_S
        )
        sample = next(iter(spec.task.train_batches(spec.config, 0, torch.device("cpu"))))
        sample = sample.inputs[:CHECK_AUDIT_ROWS]
        audit, judge = check_audit_inputs(sample, secrets.randbelow(2**62))
        out_dir, _ = self._run_on(job, candidate, audit)
        verdict = self._read(job, out_dir, "verdict.json", Verdict)
        verdict.candidate = candidate.name  # inside the sandbox every file is named candidate.py
        if verdict.passed:  # the probes ran in the candidate's process: confirm causality here
            verdict.probes.append(self._audit_probe(out_dir, audit.shape, judge))
            verdict.passed = not verdict.failures()
        return verdict

    def _audit_probe(
        self, out_dir: Path, shape: tuple[int, ...], judge: Callable[[torch.Tensor], str | None]
    ) -> ProbeResult:
        try:
            violation = judge(read_logits(out_dir / "logits.pt", (*shape, -1), self.limits.output_mb << 20))
        except HeldoutError as exc:
            violation = str(exc)
        if violation is not None:
            return ProbeResult(
                name="causality_audit", passed=False, reason=f"checked outside the sandbox: {violation}"
            )
        reason = "outputs for inputs scrambled in secret agree before every cut (checked outside the sandbox)"
        return ProbeResult(name="causality_audit", passed=True, reason=reason)

    def train(
        self,
        candidate: VettedCandidate,
        spec: RunSpec,
        device: str = "cpu",  # the pool's slot: cpu:N, cuda:N or cuda:GPU-UUID
        run_dir: Path | None = None,
        job_id: str | None = None,
        on_log: Callable[[StepLog], None] | None = None,
        deadline: float | None = None,
        heldout_draw: int = 0,
    ) -> TrainResult:
        """Fit, predict and audit on held-out set `heldout_draw` (`heldout_seed_of`); with a
        `deadline` (time.monotonic()), every job ends by it."""
        fit_job = self._job("fit", spec, device, candidate.trusted, job_id, deadline)
        if self.refuses(candidate):  # before any job folder is written
            reason = f"static check: {candidate.violations[0]}"
            raise JobFailed(JobOutcome(job_id=fit_job.job_id, status="refused", reason=reason))
        with MetricsTail(self.workdir / fit_job.job_id / "out" / "metrics.jsonl", on_log):
            fit_out, fit_outcome = self._run(fit_job, candidate)
        summary = self._read(fit_job, fit_out, "fit.json", FitSummary)
        weights = fit_out / "weights.pt"
        the_task, cfg = spec.task, spec.config
        try:
            state = read_weights(weights, self.limits.output_mb << 20)
        except HeldoutError as exc:
            raise JobFailed(JobOutcome(job_id=fit_job.job_id, status="failed", reason=str(exc))) from None
        # What a score depends on is measured here, not taken from fit.json: parameters from the
        # weights; throughput over the whole job (start-up included, so it is a lower bound, the
        # same for every candidate); wall time from this process's clock; and on the CPU peak
        # memory from the kernel's account of the job (a GPU's peak is the job's own report).
        # Throughput counts a GPU job's wall time, as it holds its device alone, but a CPU job's
        # CPU time by the kernel's account: other work competing for the cores stretches the wall
        # clock many-fold, not the job's CPU time.
        tokens = cfg.steps * the_task.tokens_per_batch(cfg)
        measured = {
            "candidate": candidate.name,
            "params": sum(tensor.numel() for tensor in state.values()),
            "tokens_per_s": tokens / fit_outcome.wall_time_s,
            "throughput_clock": "wall",
            "wall_time_s": fit_outcome.wall_time_s,
            "data_version": the_task.data_version(cfg),
        }
        if not device.startswith("cuda"):
            if fit_outcome.cpu_time_s:
                measured |= {"tokens_per_s": tokens / fit_outcome.cpu_time_s, "throughput_clock": "cpu"}
            if fit_outcome.peak_memory_mb is not None:
                measured["peak_memory_mb"] = fit_outcome.peak_memory_mb
        summary = summary.model_copy(update=measured)

        heldout = the_task.heldout(cfg, self.heldout_seed_of(heldout_draw))
        scrambled, cuts, order = audit_inputs(heldout.inputs, spec.seed)
        logits = self._predict(fit_job, device, spec, "predict", candidate, weights, heldout.inputs, deadline)
        audit = self._predict(fit_job, device, spec, "audit", candidate, weights, scrambled, deadline)
        if (violation := audit_violation(logits, audit, cuts, order)) is not None:
            raise JobFailed(JobOutcome(job_id=f"{fit_job.job_id}-audit", status="failed", reason=violation))
        try:  # the outputs and weights are the jobs' claims: one that does not fit fails the run
            metrics = the_task.score_outputs(logits, heldout.targets, cfg, state)
        except ValueError as exc:
            raise JobFailed(
                JobOutcome(job_id=f"{fit_job.job_id}-predict", status="failed", reason=str(exc))
            ) from None
        result = combine(summary, the_task.metric, metrics)
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            metrics_stream = fit_out / "metrics.jsonl"
            readable = metrics_stream.is_file() and not metrics_stream.is_symlink()
            if readable and metrics_stream.stat().st_size <= MAX_METRICS_BYTES:
                shutil.copyfile(metrics_stream, run_dir / "metrics.jsonl")
            write_json_atomic(run_dir / "result.json", result.model_dump())
        return result

    def _predict(
        self,
        fit_job: Job,
        slot: str,
        spec: RunSpec,
        name: str,
        candidate: VettedCandidate,
        weights: Path,
        inputs: torch.Tensor,
        deadline: float | None,
    ) -> torch.Tensor:
        """Run a predict job on `inputs` and return its validated outputs (the task's: logits, or
        what it scores from)."""
        job_id = f"{fit_job.job_id}-{name}"
        job = self._job("predict", spec, slot, fit_job.trusted, job_id, deadline)
        out_dir, _ = self._run_on(job, candidate, inputs, {"weights.pt": weights})
        try:
            return read_logits(out_dir / "logits.pt", (*inputs.shape, -1), self.limits.output_mb << 20)
        except HeldoutError as exc:
            raise JobFailed(JobOutcome(job_id=job_id, status="failed", reason=str(exc))) from None

    def _job(
        self,
        action: str,
        spec: RunSpec,
        slot: str,
        trusted: bool,
        job_id: str | None,
        deadline: float | None = None,
        timeout_s: float | None = None,
    ) -> Job:
        """A job of this sandbox's limits, its time limit cut to `timeout_s` and to what is left
        before `deadline` (JobFailed when nothing is)."""
        job_id = job_id or f"{action}-{uuid.uuid4().hex[:12]}"
        limit = min(self.limits.timeout_s, timeout_s or math.inf)
        left = math.inf if deadline is None else deadline - time.monotonic()
        if left < MIN_JOB_S:
            raise JobFailed(JobOutcome(job_id=job_id, status="timeout", reason=BUDGET_SPENT))
        device, gpu = slot_device(slot)
        return Job(
            job_id=job_id,
            study_id=self.study_id,
            action=action,  # type: ignore[arg-type]
            task=spec.task.name,
            settings=spec.settings,
            seed=spec.seed,
            device=device,
            gpu=gpu,
            trusted=trusted,
            read_only_paths=spec.task.prepare(spec.config),
            hidden_paths=spec.task.heldout_files(spec.config),
            limits=self.limits.model_copy(update={"timeout_s": min(limit, left)}),
            budget_bound=left < limit,
        )

    def _run_on(
        self, job: Job, candidate: VettedCandidate, inputs: torch.Tensor, files: dict[str, Path] | None = None
    ) -> tuple[Path, JobOutcome]:
        """`_run` with `inputs` in the job folder as inputs.pt."""
        staged = self.workdir / f"{job.job_id}-inputs.pt"
        self.workdir.mkdir(parents=True, exist_ok=True)
        torch.save(inputs, staged)
        try:
            return self._run(job, candidate, {**(files or {}), "inputs.pt": staged})
        finally:
            staged.unlink(missing_ok=True)

    def _run(
        self, job: Job, candidate: VettedCandidate, inputs: dict[str, Path] | None = None
    ) -> tuple[Path, JobOutcome]:
        job_dir, out_dir = prepare_job_dir(job, candidate.source, self.workdir, inputs)
        bounded = quota.bound(out_dir, self.limits.output_mb)  # the folder's total, not just each file
        try:
            with LEASES.hold(lease_path(job_dir)):  # the job ends soon after this process does
                outcome = self.backend.execute(job, job_dir, out_dir)
        finally:
            if bounded:
                quota.release(out_dir)
        strip_special_bits(out_dir)
        if outcome.status == "timeout" and job.budget_bound:
            outcome.reason = f"{BUDGET_SPENT} (stopped after {job.limits.timeout_s:.0f} s)"
        if outcome.status != "ok":
            raise JobFailed(outcome)
        return out_dir, outcome

    def _read(self, job: Job, out_dir: Path, name: str, schema):
        try:
            return read_output(out_dir, name, schema)
        except OutputError as exc:
            raise JobFailed(JobOutcome(job_id=job.job_id, status="failed", reason=str(exc))) from None


class MetricsTail:
    """Follows a job's metrics.jsonl while it runs and hands each new step to `on_log` (live
    progress). Lines are parsed as data; a malformed one is skipped."""

    def __init__(self, path: Path, on_log: Callable[[StepLog], None] | None, poll_s: float = 0.5) -> None:
        self.path, self.on_log, self.poll_s = path, on_log, poll_s
        self._stop = threading.Event()
        self._offset = 0
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> MetricsTail:
        if self.on_log is not None:
            self._thread.start()
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.on_log is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._read_new()

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._read_new()

    def _read_new(self) -> None:
        # The job controls this path: never follow a symlink out of the folder, and never block
        # on a FIFO or device put in place of the file (open and read must return at once).
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            stream.seek(self._offset)
            data = stream.read(1 << 20)
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                self.on_log(StepLog.model_validate_json(line))  # type: ignore[misc]
            except ValidationError:
                continue
