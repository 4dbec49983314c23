"""Shared fixtures. A test that needs a service (Docker, bubblewrap) fails in CI (CI=true) when the
service is missing, and skips with the reason elsewhere."""

import os
from pathlib import Path

import pytest

CANDIDATES = Path(__file__).parent / "candidates"
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
