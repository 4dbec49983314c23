"""The `process` backend: a plain child process with rlimits and a timeout. No isolation beyond
that, so it runs trusted code only (built-in baselines, template-generated candidates) unless
the user opts in explicitly."""

from __future__ import annotations

import tempfile
from pathlib import Path

from discover.sandbox.backends import BackendOptions
from discover.sandbox.base import Job, JobOutcome, failure_reason
from discover.sandbox.local import LocalBackend, LocalExit, job_environment, python_command, run_local

REFUSAL = (
    "the process backend runs only trusted code (built-in baselines, generated templates); "
    "use --sandbox docker or bwrap, or opt in with --allow-untrusted-process"
)


class ProcessBackend(LocalBackend):
    name = "process"
    isolates = False

    def __init__(self, allow_untrusted: bool = False) -> None:
        self.allow_untrusted = allow_untrusted

    @classmethod
    def available(cls, options: BackendOptions) -> tuple[bool, str]:
        return True, "trusted code only" + (
            ", untrusted allowed by the user" if options.allow_untrusted else ""
        )

    @classmethod
    def create(cls, options: BackendOptions) -> ProcessBackend:
        return cls(options.allow_untrusted)

    def execute(self, job: Job, job_dir: Path, out_dir: Path) -> JobOutcome:
        if not job.trusted and not self.allow_untrusted:
            return JobOutcome(job_id=job.job_id, status="refused", reason=REFUSAL)
        with tempfile.TemporaryDirectory(prefix="discover-scratch-") as scratch:
            env = job_environment(job, home=scratch)
            exited = run_local(python_command(job_dir, out_dir), job, env)
        return outcome(job, exited, out_dir)


def outcome(job: Job, exited: LocalExit, out_dir: Path) -> JobOutcome:
    """Shared by the local backends: turn an exit code into ok / failed / timeout with a reason."""
    common = {"job_id": job.job_id, "wall_time_s": exited.wall_time_s, "log_tail": exited.log}
    if exited.exit_code is None:
        reason = f"killed after the {job.limits.timeout_s:g} s time limit"
        return JobOutcome(status="timeout", reason=reason, **common)
    if exited.exit_code != 0:
        reason = failure_reason(out_dir, exited.log, exited.exit_code)
        return JobOutcome(status="failed", reason=reason, exit_code=exited.exit_code, **common)
    return JobOutcome(
        status="ok", exit_code=0, peak_memory_mb=exited.peak_memory_mb, cpu_time_s=exited.cpu_time_s, **common
    )
