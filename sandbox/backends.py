"""The sandbox backend registry: every way discover can run a job, declared once.

A new backend is one file in this folder (a class with the members of `BackendClass`, whose
instances are `discover.sandbox.base.Backend`s) and one `BACKENDS.register` line below. The chooser
(`select.py`), config validation, the CLI's help, `doctor` and Ray's nodes all read this list.
`--sandbox auto` takes the first isolating backend that is available here, in the order below,
and falls back to the first that is not (which runs trusted code only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from discover.experiments.registry import Registry

if TYPE_CHECKING:  # kept out of the import, so that help texts can list the names cheaply
    from discover.sandbox.base import Backend

OFFLINE_IMAGE = "discover-sandbox:local"  # the Docker image `discover sandbox build-image` makes


@dataclass(frozen=True)
class BackendOptions:
    """What a user may choose about a backend; each backend reads the options it has a use for."""

    image: str = OFFLINE_IMAGE  # docker: the image jobs run in
    host_runtime: bool = True  # docker: borrow the host's Python (the offline image has none)
    allow_untrusted: bool = False  # non-isolating backends: run code that is not trusted anyway


class BackendClass(Protocol):
    name: ClassVar[str]
    isolates: ClassVar[bool]  # whether it may run untrusted (LLM- or user-written) code

    @classmethod
    def available(cls, options: BackendOptions) -> tuple[bool, str]:
        """Whether it can run here; the second value says why (not), in one line."""
        ...

    @classmethod
    def create(cls, options: BackendOptions) -> Backend: ...


BACKENDS: Registry[BackendClass] = Registry("sandbox backend")
BACKENDS.register("docker", "discover.sandbox.docker:DockerBackend", "a container without network")
BACKENDS.register("bwrap", "discover.sandbox.bwrap:BwrapBackend", "Linux namespaces, no engine needed")
BACKENDS.register(
    "process", "discover.sandbox.process:ProcessBackend", "a plain child process: trusted code only"
)


def make_backend(name: str, options: BackendOptions | None = None) -> Backend:
    """The registered backend `name`, built with `options` (no availability check)."""
    return BACKENDS.get(name).create(options or BackendOptions())


def isolating() -> list[str]:
    """The registered backends that may run untrusted code."""
    return [name for name, kind in BACKENDS.items() if kind.isolates]
