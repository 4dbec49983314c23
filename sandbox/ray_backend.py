"""Jobs on a Ray cluster: the same sandbox (docker, bwrap or process), run on whichever worker node
Ray places the job, with the orchestrator, knowledge base and budget ledger staying in one place.

`RayBackend.execute` is a `Backend` like the local ones. It ships the job folder's files (the spec,
the candidate, weights and inputs for predict jobs) with a Ray task that requests the job's CPUs,
memory and GPU; on the node, `run_on_node` rebuilds the folders, runs the inner backend (which
enforces every limit there), and returns the output folder's regular files, bounded in total.

A worker or node that dies mid-job is reported as status "lost": the orchestrator releases that
attempt's reservation and tries once more (`budget.jobs.BudgetedJobs.run`). Whatever the dead attempt left
on a node (a container keeps running when the Ray worker that started it dies) is reaped on every
node by the job's label.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from discover.sandbox import quota
from discover.sandbox.backends import BACKENDS, OFFLINE_IMAGE, BackendOptions, make_backend
from discover.sandbox.base import Backend, Job, JobOutcome, lease_path, strip_special_bits
from discover.sandbox.lease import LEASES
from discover.sandbox.pool import DevicePool
from discover.sandbox.select import SandboxUnavailable

RESULT_MARGIN_S = 120.0  # on top of the job's own time limit, which the node enforces
INFRASTRUCTURE_ERRORS = (
    "WorkerCrashedError", "NodeDiedError", "OwnerDiedError", "ObjectLostError", "ActorDiedError",
    "RaySystemError", "TaskUnschedulableError", "LocalRayletDiedError", "ObjectFetchTimedOutError",
)  # fmt: skip


def inner_backend(name: str, image: str | None = None) -> Backend:
    """The sandbox a node runs jobs in: the registered backend of that name."""
    return make_backend(name, BackendOptions(image=image or OFFLINE_IMAGE))


def read_files(folder: Path, limit_bytes: int) -> dict[str, bytes]:
    """Regular files under `folder` (links and special files skipped), at most `limit_bytes` in all."""
    files, total = {}, 0
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        if total + size > limit_bytes:
            raise ValueError(f"job output exceeds {limit_bytes >> 20} MB in total")
        files[str(path.relative_to(folder))] = path.read_bytes()
        total += size
    return files


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        target = (folder / name).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise ValueError(f"refused a file outside the job folder: {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def on_node_gpu(job: Job, assigned: list) -> Job:
    """The job pinned to the GPU Ray assigned it on this node (its id there, an index or a UUID),
    not to the orchestrator's slot, which only counted jobs in flight."""
    if job.gpu is None:
        return job
    return job.model_copy(update={"gpu": str(assigned[0])})


def run_on_node(backend_name: str, image: str | None, job_data: dict, files: dict[str, bytes]) -> dict:
    """The Ray task: run one job in the node's sandbox; returns the outcome and the output files."""
    import ray

    job = Job.model_validate(job_data)
    job = on_node_gpu(job, ray.get_gpu_ids())
    with tempfile.TemporaryDirectory(prefix=f"discover-{job.job_id}-") as root:
        job_dir, out_dir = Path(root) / "job", Path(root) / "out"
        job_dir.mkdir()
        out_dir.mkdir()
        out_dir.chmod(0o777)  # the sandbox runs as an unprivileged user
        write_files(job_dir, files)
        bounded = quota.bound(out_dir, job.limits.output_mb)
        try:
            # Renewed by this worker: if Ray kills it (its driver died), the job ends soon after.
            with LEASES.hold(lease_path(job_dir)):
                outcome = inner_backend(backend_name, image).execute(job, job_dir, out_dir)
        finally:
            if bounded:
                quota.release(out_dir)
        strip_special_bits(out_dir)
        try:
            output = read_files(out_dir, job.limits.output_mb << 20)
        except ValueError as exc:
            output = {}
            outcome = outcome.model_copy(update={"status": "failed", "reason": str(exc)})
    return {"outcome": outcome.model_dump(), "files": output}


def reap_on_node(backend_name: str, image: str | None, study_id: str | None, job_id: str | None) -> int:
    """Remove what jobs of a study or job left on this node: a container (which outlives the Ray
    worker that started it until its lease runs out; bwrap and process jobs die with the worker),
    and the output mounts of workers that died."""
    options = BackendOptions(image=image or OFFLINE_IMAGE)
    kind = BACKENDS.get(backend_name)
    reaped = kind.create(options).reap(study_id, job_id) if kind.available(options)[0] else 0
    return reaped + quota.release_orphans()


def use_ray_token() -> None:
    """Present the cluster token when there is one. `ray start` turns token authentication on by
    itself once a token exists (~/.ray/auth_token, which a local `ray.init` writes), but a client
    joining a cluster only sends it in token mode; a client in token mode also joins an open one."""
    if "RAY_AUTH_MODE" in os.environ:
        return  # the user's choice
    named = os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
    if named or (Path.home() / ".ray" / "auth_token").exists():
        os.environ["RAY_AUTH_MODE"] = "token"


class RayBackend:
    def __init__(self, inner: str, address: str | None = None, image: str | None = None) -> None:
        use_ray_token()  # before importing ray, which reads its configuration once
        import ray

        self.inner, self.image = inner, image
        self.name = f"ray+{inner}"
        self.isolates = BACKENDS.get(inner).isolates
        if not ray.is_initialized():
            # Jobs import discover on the nodes: every node needs the same discover installed.
            try:
                ray.init(address=address or "auto", log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError) as exc:
                where = address or "auto"
                raise SandboxUnavailable(
                    f"no Ray cluster at {where} ({str(exc).splitlines()[0][:160]}); start one with "
                    "`ray start --head` or pass --ray-address"
                ) from None
        self._remote = ray.remote(max_retries=0)(run_on_node)  # retries are the orchestrator's call
        self._reaper = ray.remote(num_cpus=0, max_retries=0)(reap_on_node)
        self._running: dict[str, Any] = {}  # job id -> object ref, for kill_all
        self._lock = threading.Lock()

    def execute(self, job: Job, job_dir: Path, out_dir: Path) -> JobOutcome:
        import ray
        from ray import exceptions

        files = read_files(job_dir, 1 << 40)  # what the orchestrator wrote: no bound needed
        options: dict[str, Any] = {"num_cpus": job.limits.cpus, "memory": job.limits.memory_mb << 20}
        if job.gpu is not None:
            options["num_gpus"] = 1
        ref = self._remote.options(**options).remote(self.inner, self.image, job.model_dump(), files)
        with self._lock:
            self._running[job.job_id] = ref
        try:
            answer = ray.get(ref, timeout=job.limits.timeout_s + RESULT_MARGIN_S)
        except exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            self.reap(job_id=job.job_id)
            return JobOutcome(
                job_id=job.job_id, status="timeout", reason="no answer from the Ray cluster in time"
            )
        except exceptions.RayError as exc:
            self.reap(job_id=job.job_id)
            if type(exc).__name__ in INFRASTRUCTURE_ERRORS:
                reason = f"lost: the Ray worker running it died ({type(exc).__name__})"
                return JobOutcome(job_id=job.job_id, status="lost", reason=reason)
            return JobOutcome(job_id=job.job_id, status="failed", reason=f"Ray: {str(exc).splitlines()[0]}")
        finally:
            with self._lock:
                self._running.pop(job.job_id, None)
        write_files(out_dir, answer["files"])
        return JobOutcome.model_validate(answer["outcome"])

    def pool(self, cpu_slots: int) -> DevicePool:
        """Device slots for the study: one per GPU in the cluster, else `cpu_slots` CPU slots. Ray
        picks the physical GPU on the node; the slot only bounds how many jobs are in flight."""
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus:
            return DevicePool([f"cuda:{index}" for index in range(gpus)])
        return DevicePool([f"cpu:{index}" for index in range(cpu_slots)])

    def reap(self, study_id: str | None = None, job_id: str | None = None) -> int:
        """Reap discover containers of a study or job on every live node of the cluster."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        refs = [
            self._reaper.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(self.inner, self.image, study_id, job_id)
            for node in ray.nodes()
            if node["Alive"]
        ]
        return sum(ray.get(refs, timeout=120))

    def kill_all(self) -> None:
        """Cancel every job in flight (a study told to stop now)."""
        import ray

        with self._lock:
            refs = list(self._running.values())
        for ref in refs:
            ray.cancel(ref, force=True)
