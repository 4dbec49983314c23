"""`--sandbox auto|docker|bwrap|process`: pick a backend and say which and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from discover.sandbox.base import Backend
from discover.sandbox.bwrap import BwrapBackend, bwrap_available
from discover.sandbox.docker import OFFLINE_IMAGE, DockerBackend, docker_available
from discover.sandbox.process import ProcessBackend

BackendName = Literal["auto", "docker", "bwrap", "process"]


class SandboxUnavailable(Exception):
    """The backend asked for cannot run here; the message says why in one line."""


@dataclass
class Choice:
    backend: Backend
    why: str


def choose_backend(
    name: BackendName = "auto",
    image: str = OFFLINE_IMAGE,
    host_runtime: bool = True,
    allow_untrusted: bool = False,
) -> Choice:
    """docker when an engine answers (and has the image), else bwrap when it works, else process."""
    if name in ("auto", "docker"):
        ok, why = docker_available(image)
        if ok:
            return Choice(DockerBackend(image, host_runtime), f"docker: {why}")
        if name == "docker":
            raise SandboxUnavailable(f"--sandbox docker: {why}")
        docker_why = why
    if name in ("auto", "bwrap"):
        ok, why = bwrap_available()
        if ok:
            prefix = f"bwrap ({docker_why}): " if name == "auto" else "bwrap: "
            return Choice(BwrapBackend(), prefix + why)
        if name == "bwrap":
            raise SandboxUnavailable(f"--sandbox bwrap: {why}")
        bwrap_why = why
    if name == "auto":
        why = f"process ({docker_why}; {bwrap_why}): trusted code only"
    else:
        why = "process: trusted code only" + (
            "" if not allow_untrusted else ", untrusted allowed by the user"
        )
    return Choice(ProcessBackend(allow_untrusted), why)
