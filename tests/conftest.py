"""Shared fixtures. A test that needs a service (Docker, bubblewrap) fails in CI (CI=true) when the
service is missing, and skips with the reason elsewhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CANDIDATES = Path(__file__).parent / "candidates"
# A study small enough to run end to end in seconds: one baseline, 20 steps (10 at screening).
# Top-level keys (name, proposer, sandbox) go before it, as `f"name = ...\n{TINY_STUDY}"`.
TINY_STUDY = """\
baselines = ["softmax_attention"]
[settings]
steps = 20
log_every = 10
test_examples = 64
warmup_steps = 5
[screen]
settings = { steps = 10 }
[limits]
timeout_s = 120
memory_mb = 4096
"""
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, why: str) -> None:
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI needs this service: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def docker_backend():
    from discover.sandbox.docker import OFFLINE_IMAGE, DockerBackend, build_offline_image, docker_available

    ok, why = docker_available()
    if not ok and "no image" in why:
        build_offline_image()
        ok, why = docker_available()
    require(ok, why)
    return DockerBackend(OFFLINE_IMAGE)


@pytest.fixture(scope="session")
def bwrap_backend():
    from discover.sandbox.bwrap import BwrapBackend, bwrap_available

    ok, why = bwrap_available()
    require(ok, why)
    return BwrapBackend()


@pytest.fixture(params=["docker", "bwrap"])
def isolating_backend(request):
    """Each test using this runs once per isolating backend."""
    return request.getfixturevalue(f"{request.param}_backend")


POSTGRES_URL = os.environ.get("DISCOVER_TEST_POSTGRES_URL")


def postgres_server_why() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    if not POSTGRES_URL:
        return "no PostgreSQL server: set DISCOVER_TEST_POSTGRES_URL (.ci/start-postgres starts one)"
    try:
        import psycopg

        psycopg.connect(POSTGRES_URL, connect_timeout=5).close()
    except Exception as error:  # any failure to connect means the same to the test: no server
        return f"PostgreSQL at {POSTGRES_URL} does not answer: {str(error).splitlines()[0]}"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def kb_location(request, tmp_path):
    """A fresh, empty database location: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "knowledge.db")
        return
    why = postgres_server_why()
    require(why is None, why or "")
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"kb_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(POSTGRES_URL)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def openai_server():
    from tests.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server


def job_processes(jobs_dir: Path, study_id: str, stopped_containers: bool = True) -> list[str]:
    """A study's jobs still on this host: local job processes working under `jobs_dir`, and its
    containers (with `stopped_containers`, also those that have exited but were not removed)."""
    listed = subprocess.run(["pgrep", "-af", "discover.experiments.job"], capture_output=True, text=True)
    found = [line for line in listed.stdout.splitlines() if str(jobs_dir.resolve()) in line]
    which = "-aq" if stopped_containers else "-q"
    containers = subprocess.run(
        ["docker", "ps", which, "--filter", f"label=discover.study={study_id}"],
        capture_output=True,
        text=True,
    )
    return found + containers.stdout.split()


def job_mounts(jobs_dir: Path) -> list[Path]:
    """Job output mounts under `jobs_dir` still mounted."""
    from discover.sandbox import quota

    return [point for _, point in quota.mounted() if point.is_relative_to(jobs_dir.resolve())]


def discover(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """The command line as a user runs it, in a process of its own."""
    command = [sys.executable, "-m", "discover.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.fixture
def bare_study(tmp_path):
    """A study's objects on an empty knowledge base (evolution, mqar, the process backend), for
    tests that write its records by hand; nothing is trained."""
    from discover.agents.compose import compose_study
    from discover.agents.config import StudyConfig
    from discover.agents.record import StudyRecord, open_knowledge_base
    from discover.sandbox.process import ProcessBackend

    folder = tmp_path / "study"
    folder.mkdir()
    config = StudyConfig.model_validate({"name": "bare", "task": "mqar", "proposer": "evolution"})
    kb = open_knowledge_base(folder)
    row = kb.add_study(config.name, config.model_dump(mode="json"), config.budget.text)
    record = StudyRecord(study_id=row.id, heldout_seed=1, created_at="2026-12-06T00:00:00")
    yield compose_study(folder, config, ProcessBackend(), kb, record)
    kb.close()
