"""`discover doctor`: everything a study needs, checked before any money is spent.

Each check answers ok, warn (the study can run, with less: no GPU, no isolating sandbox) or fail
(the study as configured cannot run). Nothing is written and nothing is started.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from discover.agents.config import StudyConfig

MIN_FREE_GB = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    state: Literal["ok", "warn", "fail"]
    detail: str


def python_and_torch() -> Check:
    import platform

    import torch

    return Check("python, torch", "ok", f"Python {platform.python_version()}, torch {torch.__version__}")


def gpus() -> Check:
    import torch

    if not torch.cuda.is_available():
        return Check("GPUs", "warn", "none visible: CPU slots are the devices (fine for small studies)")
    names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return Check("GPUs", "ok", f"{len(names)}: {', '.join(names)}")


def sandboxes(config: StudyConfig) -> list[Check]:
    """Every registered backend's availability, and whether the study's choice can run."""
    from discover.agents.proposers import PROPOSERS
    from discover.sandbox.backends import BACKENDS, BackendOptions, isolating

    options = BackendOptions()
    available = {name: kind.available(options) for name, kind in BACKENDS.items()}
    checks = [Check(name, "ok" if ok else "warn", why) for name, (ok, why) in available.items()]
    isolates = isolating()
    wanted = config.sandbox
    untrusted = config.proposer != "auto" and not PROPOSERS.get(config.proposer).trusted
    if wanted != "auto" and not available[wanted][0]:
        checks.append(Check("sandbox", "fail", f"discover.toml asks for {wanted}, which cannot run here"))
    elif untrusted and not any(available[name][0] for name in isolates):
        detail = f"{config.proposer}-written code needs {' or '.join(isolates)}; none works here"
        checks.append(Check("sandbox", "fail", detail))
    if available.get("docker", (False, ""))[0]:
        checks.append(nvidia_runtime())
    return checks


def nvidia_runtime() -> Check:
    import docker
    import torch

    runtimes = docker.from_env(timeout=5).info().get("Runtimes", {})
    if "nvidia" in runtimes:
        return Check("NVIDIA runtime", "ok", "docker can hand GPUs to containers")
    if not torch.cuda.is_available():
        return Check("NVIDIA runtime", "ok", "not installed; not needed without GPUs")
    why = "not installed in docker: GPU jobs in docker need the NVIDIA container toolkit (bwrap sees GPUs)"
    return Check("NVIDIA runtime", "warn", why)


def disk(folder: Path) -> Check:
    free_gb = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free / 2**30
    state = "ok" if free_gb >= MIN_FREE_GB else "warn"
    return Check("disk", state, f"{free_gb:.1f} GB free where the study writes")


def knowledge_base(folder: Path) -> Check:
    from discover.knowledge_base.store import KnowledgeBase, StoreError

    path = folder / "knowledge.db"
    if not path.exists():
        return Check("knowledge base", "ok", f"{path} will be created")
    try:
        with KnowledgeBase(path, starter=None):
            return Check("knowledge base", "ok", f"{path} opens")
    except StoreError as exc:
        return Check("knowledge base", "fail", str(exc))


def llm_endpoint(config: StudyConfig) -> Check:
    settings = config.llm
    if config.proposer not in ("auto", "llm"):
        return Check("LLM endpoint", "ok", f"not needed: proposer {config.proposer}")
    key = os.environ.get(settings.api_key_env)
    if settings.base_url is None and not key:
        state = "fail" if config.proposer == "llm" else "ok"
        return Check("LLM endpoint", state, f"none configured ([llm] base_url, or {settings.api_key_env})")
    import openai

    client = openai.OpenAI(base_url=settings.base_url, api_key=key or "unused", timeout=10, max_retries=0)
    try:
        available = {model.id for model in client.models.list()}
    except openai.APIError as exc:
        return Check("LLM endpoint", "fail", f"{settings.base_url or 'OpenAI'}: {type(exc).__name__}")
    roles = {"researcher", "coder", "analyst", *settings.models} | ({"judge"} if settings.judge else set())
    wanted = {settings.model_for(role) for role in roles}  # every model the study will ask
    missing = sorted(wanted - available)
    if missing:
        return Check("LLM endpoint", "fail", f"answers, but lacks model(s) {', '.join(missing)}")
    return Check("LLM endpoint", "ok", f"answers; serves {', '.join(sorted(wanted))}")


def ray_cluster(config: StudyConfig) -> Check:
    if config.executor != "ray":
        return Check("Ray cluster", "ok", "not needed: executor local")
    from discover.sandbox.ray_backend import use_ray_token

    use_ray_token()
    import ray

    where = config.ray_address or "auto"
    try:
        ray.init(address=where, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError) as exc:
        return Check("Ray cluster", "fail", f"{where}: {str(exc).splitlines()[0][:200]}")
    try:
        nodes = [node for node in ray.nodes() if node["Alive"]]
        resources = ray.cluster_resources()
    finally:
        ray.shutdown()
    gpus = int(resources.get("GPU", 0))
    detail = f"{where}: {len(nodes)} live node(s), {resources.get('CPU', 0):g} CPUs, {gpus} GPUs"
    return Check("Ray cluster", "ok" if gpus else "warn", detail + ("" if gpus else " (CPU slots only)"))


def run_checks(config: StudyConfig, folder: Path) -> list[Check]:
    steps: list[Callable[[], Check | list[Check]]] = [
        python_and_torch, gpus, lambda: sandboxes(config), lambda: disk(folder),
        lambda: knowledge_base(folder), lambda: llm_endpoint(config), lambda: ray_cluster(config),
    ]  # fmt: skip
    checks: list[Check] = []
    for step in steps:
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    return checks
