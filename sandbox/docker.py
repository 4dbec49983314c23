"""The `docker` backend: each job in a locked-down container, through the Docker SDK.

No network; read-only root; a size-limited tmpfs as scratch; the job folder mounted read-only and
the output folder writable, nothing else of the host except (in host-runtime mode) the Python
runtime, read-only; user nobody; every capability dropped; no-new-privileges; pids, memory, CPU
and file-size limits; GPUs pinned per job; a wall-clock timeout that kills the container; capped
logs; no host environment. Every container carries the study and job ids as labels, so a crashed
study's orphans can be found and removed.

Two kinds of image:
- host runtime (the default, and the only kind on machines without registry access): an image
  built locally by `build_offline_image` from an almost empty root; the host's /usr and Python
  are mounted read-only at run time, so nothing is pulled;
- bundled: an image with Python, torch and discover inside, e.g. from `sandbox/Dockerfile` on a
  CUDA base pinned by digest; use `host_runtime=False`.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tarfile
import time
from pathlib import Path

import docker
import requests
from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

from discover.sandbox.backends import OFFLINE_IMAGE, BackendOptions
from discover.sandbox.base import Job, JobOutcome, failure_reason, hidden_mounts, lease_path
from discover.sandbox.local import LocalBackend, job_environment, python_command
from discover.sandbox.runtime import host_runtime_paths
from discover.sandbox.watchdog import Accounting, read_accounting, watched

LABEL_STUDY = "discover.study"
LABEL_JOB = "discover.job"
LEASE_MOUNT = "/lease"
HOST_SYSTEM_PATHS = ("/usr", "/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime")


def docker_available(image: str = OFFLINE_IMAGE) -> tuple[bool, str]:
    """Whether an engine answers and the image exists; the second value says why not."""
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:
        return False, f"no Docker engine answers ({type(exc).__name__})"
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False, f"the Docker engine has no image {image}: run `discover sandbox build-image`"
    return True, f"Docker engine {client.version().get('Version', '?')} with image {image}"


def build_offline_image(tag: str = OFFLINE_IMAGE) -> str:
    """Import a minimal root (a user table, mount points, merged-/usr links) as a local image.
    Pulls nothing: the Python runtime comes from the host, mounted read-only at run time."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("etc", "usr", "tmp", "job", "out", "proc", "dev", "sys"):
            _add_dir(tar, folder, 0o1777 if folder == "tmp" else 0o755)
        for link, target in (
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
            ("sbin", "usr/sbin"),
        ):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        _add_file(
            tar,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/tmp:/bin/false\n",
        )
        _add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    repository, _, version = tag.partition(":")
    client = docker.from_env()
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=version or "latest")
    return tag


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def watchdog_accounting(container: docker.models.containers.Container) -> Accounting | None:
    """The job's peak memory and CPU time, from the watchdog's last line on stdout (`watchdog.py`):
    stdout alone, as Docker may log a line of stderr the job wrote before it died after the
    watchdog's line."""
    return read_accounting(container.logs(stdout=True, stderr=False, tail=1).decode(errors="replace"))[1]


def container_environment(job: Job) -> dict[str, str]:
    environment = job_environment(job, home="/tmp")
    if job.gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = "0"  # the container sees the requested GPU alone
    return environment


def gpu_requests(job: Job) -> list[DeviceRequest]:
    """The job's GPU, by the host's index or UUID (NVIDIA's runtime takes both); none on CPU."""
    return [] if job.gpu is None else [DeviceRequest(device_ids=[job.gpu], capabilities=[["gpu"]])]


class DockerBackend(LocalBackend):
    name = "docker"
    isolates = True

    def __init__(self, image: str = OFFLINE_IMAGE, host_runtime: bool = True) -> None:
        self.image = image
        self.host_runtime = host_runtime
        self.client = docker.from_env()

    @classmethod
    def available(cls, options: BackendOptions) -> tuple[bool, str]:
        return docker_available(options.image)

    @classmethod
    def create(cls, options: BackendOptions) -> DockerBackend:
        return cls(options.image, options.host_runtime)

    def shared_paths(self, job: Job) -> list[Path]:
        """Host folders the container sees read-only at their own paths."""
        shared = [Path(p) for p in job.read_only_paths]
        if self.host_runtime:
            shared += [Path(p) for p in HOST_SYSTEM_PATHS if Path(p).exists()] + host_runtime_paths()
        return shared

    def volumes(self, job: Job, job_dir: Path, out_dir: Path) -> dict[str, dict[str, str]]:
        volumes = {str(job_dir): {"bind": "/job", "mode": "ro"}, str(out_dir): {"bind": "/out", "mode": "rw"}}
        for path in self.shared_paths(job):
            volumes[str(path)] = {"bind": str(path), "mode": "ro"}
        return volumes

    def file_mounts(self, job: Job, job_dir: Path) -> list[Mount]:
        """The job's lease at /lease, and an empty file over each held-out file in a shared folder
        (a volume per source path cannot express many mounts of one file)."""
        lease = Mount(LEASE_MOUNT, str(lease_path(job_dir)), type="bind", read_only=True)
        return [lease] + [
            Mount(str(hidden), str(empty), type="bind", read_only=True)
            for empty, hidden in hidden_mounts(job, job_dir, self.shared_paths(job))
        ]

    def execute(self, job: Job, job_dir: Path, out_dir: Path) -> JobOutcome:
        limits = job.limits
        python = sys.executable if self.host_runtime else "python3"
        environment = container_environment(job)
        started = time.perf_counter()
        container = self.client.containers.run(
            self.image,
            # The watchdog is PID 1: it ends the job at the limit, or once this process is gone
            # (the lease it renews runs out), without this process.
            watched(python, limits.timeout_s, LEASE_MOUNT, python_command("/job", "/out", python)),
            detach=True,
            network_disabled=True,
            read_only=True,
            tmpfs={"/tmp": f"size={limits.scratch_mb}m,mode=1777"},
            volumes=self.volumes(job, job_dir, out_dir),
            mounts=self.file_mounts(job, job_dir),
            user="65534:65534",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            nano_cpus=int(limits.cpus * 1e9),
            ulimits=[
                Ulimit(name="fsize", soft=limits.output_mb << 20, hard=limits.output_mb << 20),
                Ulimit(name="core", soft=0, hard=0),
            ],
            labels={LABEL_STUDY: job.study_id, LABEL_JOB: job.job_id},
            environment=environment,
            working_dir="/tmp",
            device_requests=gpu_requests(job),
            log_config=LogConfig(type="json-file", config={"max-size": f"{limits.log_kb}k", "max-file": "1"}),
        )
        try:
            try:
                exit_code: int | None = container.wait(timeout=limits.timeout_s)["StatusCode"]
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                exit_code = None
                container.kill()
            log = container.logs(stdout=True, stderr=True)[-limits.log_kb * 1024 :].decode(errors="replace")
            log, _ = read_accounting(log)
            peak_memory_mb, cpu_time_s = watchdog_accounting(container) or (None, None)
            container.reload()
            oom = container.attrs["State"].get("OOMKilled", False)
        finally:
            with contextlib.suppress(docker.errors.NotFound):  # already reaped by someone else
                container.remove(force=True)
        seconds = time.perf_counter() - started
        if exit_code is None:
            reason = f"killed after the {limits.timeout_s:g} s time limit"
            return JobOutcome(
                job_id=job.job_id, status="timeout", reason=reason, wall_time_s=seconds, log_tail=log
            )
        if exit_code != 0:
            reason = (
                f"killed: exceeded the {limits.memory_mb} MB memory limit"
                if oom
                else failure_reason(out_dir, log, exit_code)
            )
            return JobOutcome(
                job_id=job.job_id, status="failed", reason=reason, exit_code=exit_code,
                wall_time_s=seconds, log_tail=log,
            )  # fmt: skip
        return JobOutcome(
            job_id=job.job_id, status="ok", exit_code=0, wall_time_s=seconds, log_tail=log,
            peak_memory_mb=peak_memory_mb, cpu_time_s=cpu_time_s,
        )  # fmt: skip

    def reap(self, study_id: str | None = None, job_id: str | None = None) -> int:
        """Remove every discover container (of one study or job, if given) left by a crashed run."""
        return len(self._remove(self._labelled(study_id, job_id)))

    def reap_exited(self, study_id: str | None = None) -> int:
        """Remove the discover containers that have stopped, leaving running jobs alone: a job
        whose study is gone stops by itself once its lease runs out."""
        return len(self._remove(self._labelled(study_id, None, status="exited")))

    def _labelled(self, study_id: str | None, job_id: str | None, **filters: str) -> list:
        label = f"{LABEL_JOB}={job_id}" if job_id else f"{LABEL_STUDY}={study_id}" if study_id else LABEL_JOB
        return self.client.containers.list(all=True, filters={"label": label, **filters})

    @staticmethod
    def _remove(containers: list) -> list:
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        return containers
