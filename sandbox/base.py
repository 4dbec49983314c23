"""What every sandbox backend shares: the job description, its outcome, and the job folders.

A backend runs `python -m discover.experiments.job JOB_DIR OUT_DIR` with JOB_DIR read-only and
OUT_DIR writable, within `Limits`, and reports a `JobOutcome`. Everything else
(writing the job folder, reading results back with size limits) happens here, outside the sandbox.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from discover.experiments.jobspec import JobError, JobFile
from discover.sandbox.lease import LEASE_FILE, LEASE_S, write_lease

if TYPE_CHECKING:
    from discover.sandbox.pool import DevicePool

EMPTY_FILE = "empty"  # beside a job's job/ and out/ folders


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = 3600.0  # wall clock; the job is killed after this
    memory_mb: int = 8192
    pids: int = 256
    cpus: float = 2.0
    scratch_mb: int = 1024  # size of the writable /tmp
    output_mb: int = 1024  # largest file the job may write to /out (weights included)
    log_kb: int = 256  # the last this-many KB of stdout/stderr are kept


class Job(JobFile):
    """A job as the host sees it: what the job reads (`JobFile`, the only part written into the job
    folder) and what only the host needs to run it."""

    job_id: str
    study_id: str = "adhoc"
    gpu: str | None = None  # the host's id (index or UUID) of the GPU the backend pins; None on CPU
    trusted: bool = False  # built-in baseline or template-generated code (`discover.vetting.trust`)
    read_only_paths: list[str] = Field(default_factory=list)  # host data the job reads, e.g. a corpus folder
    # Host files holding held-out data inside folders the job sees (an lm corpus's validation
    # files, the standard library's among them): every backend shows them to the job as empty files.
    hidden_paths: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    budget_bound: bool = False  # its time limit is what its share of the budget leaves


class JobOutcome(BaseModel):
    job_id: str
    status: Literal["ok", "failed", "timeout", "refused", "lost"]  # lost: the machine running it died
    reason: str = ""
    exit_code: int | None = None
    wall_time_s: float = 0.0
    log_tail: str = ""
    # Peak resident set of the job's largest process, measured by its parent outside the job's
    # reach (`waiting.py`); None where the backend cannot tell.
    peak_memory_mb: float | None = None
    # The job's CPU time by the kernel's account (user + system, every thread, the processes it
    # reaped), measured by its parent outside the job's reach; None where the backend cannot tell.
    cpu_time_s: float | None = None


class Backend(Protocol):
    """A way to run jobs. Registered in `discover.sandbox.backends`; `local.LocalBackend` has the
    defaults for backends that run jobs as children of this process."""

    name: str
    isolates: bool  # whether it may run untrusted code

    def execute(self, job: Job, job_dir: Path, out_dir: Path) -> JobOutcome:
        """Run the entry point over the two folders, isolated and within `job.limits`."""
        ...

    def reap(self, study_id: str | None = None, job_id: str | None = None) -> int:
        """Remove what killed jobs of a study (or one job) left behind; returns how many."""
        ...

    def kill_all(self) -> None:
        """Kill every job this process started that is still running (a study told to stop now)."""
        ...

    def pool(self, cpu_slots: int) -> DevicePool:
        """The device slots jobs of this backend run on: the GPUs, else `cpu_slots` CPU slots."""
        ...


def prepare_job_dir(
    job: Job, source: str, workdir: Path, inputs: dict[str, Path] | None = None
) -> tuple[Path, Path]:
    """Write /job (spec, the candidate's `source` as vetted, extra inputs such as weights), an
    empty /out and the job's lease (`lease.py`) for one job."""
    root = workdir / job.job_id
    if root.exists():
        shutil.rmtree(root)
    job_dir, out_dir = root / "job", root / "out"
    # Only the owner may traverse the job folder: whatever a job leaves in /out (a set-user-ID
    # file, say) is out of reach of every other local user.
    root.mkdir(parents=True, mode=0o700)
    root.chmod(0o700)
    job_dir.mkdir()
    out_dir.mkdir()
    out_dir.chmod(0o777)  # the sandbox runs as an unprivileged user
    write_lease(root / LEASE_FILE, time.time() + LEASE_S)
    spec = JobFile.model_validate(job.model_dump(include=set(JobFile.model_fields)))
    (job_dir / "job.json").write_text(spec.model_dump_json())
    if job.hidden_paths:  # what backends mount over each hidden file; outside /job, so unseen
        (root / EMPTY_FILE).touch(mode=0o444)
    (job_dir / "candidate.py").write_text(source, encoding="utf-8")
    for name, path in (inputs or {}).items():
        shutil.copyfile(path, job_dir / name)
    for path in job_dir.iterdir():
        path.chmod(0o444)
    job_dir.chmod(0o555)
    return job_dir, out_dir


def lease_path(job_dir: Path) -> Path:
    """The job's lease file, beside its job/ folder."""
    return job_dir.parent / LEASE_FILE


def hidden_mounts(job: Job, job_dir: Path, mounted: list[Path]) -> list[tuple[Path, Path]]:
    """(empty file, hidden path) for each of the job's hidden files that lies in a folder the job
    sees; the backend mounts the first over the second, read-only."""
    empty = job_dir.parent / EMPTY_FILE
    hidden = [Path(path) for path in job.hidden_paths]
    return [(empty, path) for path in hidden if any(path.is_relative_to(folder) for folder in mounted)]


def strip_special_bits(out_dir: Path) -> int:
    """Clear set-user-ID, set-group-ID and sticky bits on everything a finished job left in its
    output folder (a host folder), so it can never hand out the sandbox user's identity. Symlinks
    are neither followed nor changed. Returns how many entries were changed."""
    special = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
    changed = 0
    for folder, subfolders, files in os.walk(out_dir, followlinks=False):
        for name in [*subfolders, *files]:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & special:
                path.chmod(stat.S_IMODE(mode) & ~special)
                changed += 1
    return changed


class OutputError(Exception):
    """A result file that is missing, too large, or not of its schema."""


Schema = TypeVar("Schema", bound=BaseModel)


def read_output(out_dir: Path, name: str, schema: type[Schema], max_bytes: int = 1 << 20) -> Schema:
    path = out_dir / name
    if path.is_symlink() or not path.is_file():
        raise OutputError(f"the job wrote no {name}")
    if path.stat().st_size > max_bytes:
        raise OutputError(f"{name} is larger than {max_bytes} bytes")
    try:
        return schema.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise OutputError(f"{name} does not match its schema: {exc.errors()[0]['msg']}") from None


def failure_reason(out_dir: Path, log_tail: str, exit_code: int | None) -> str:
    """The job's own error.json if it wrote one, else the last line of its log."""
    try:
        return read_output(out_dir, "error.json", JobError, max_bytes=16_384).reason
    except OutputError:
        pass
    lines = [line for line in log_tail.strip().splitlines() if line.strip()]
    last = lines[-1][:300] if lines else "no output"
    return f"exited with status {exit_code}: {last}"
