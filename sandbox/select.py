"""`--sandbox auto|NAME`: pick a registered backend and say which and why."""

from __future__ import annotations

from dataclasses import dataclass

from discover.sandbox.backends import BACKENDS, OFFLINE_IMAGE, BackendOptions
from discover.sandbox.base import Backend


class SandboxUnavailable(Exception):
    """The backend asked for cannot run here; the message says why in one line."""


@dataclass
class Choice:
    backend: Backend
    why: str


def choose_backend(
    name: str = "auto",
    image: str = OFFLINE_IMAGE,
    host_runtime: bool = True,
    allow_untrusted: bool = False,
) -> Choice:
    """The backend `name`, or for "auto" the first available isolating backend in the registry's
    order (docker, then bwrap), else the first non-isolating one (process: trusted code only)."""
    options = BackendOptions(image, host_runtime, allow_untrusted)
    if name != "auto":
        if name not in BACKENDS:
            raise SandboxUnavailable(f"--sandbox takes {BACKENDS.help(('auto',))}, not '{name}'")
        kind = BACKENDS.get(name)
        ok, why = kind.available(options)
        if not ok:
            raise SandboxUnavailable(f"--sandbox {name}: {why}")
        return Choice(kind.create(options), f"{name}: {why}")
    passed_over = []
    for candidate, kind in BACKENDS.items():
        if not kind.isolates:
            continue
        ok, why = kind.available(options)
        if ok:
            prefix = f"{candidate} ({'; '.join(passed_over)}): " if passed_over else f"{candidate}: "
            return Choice(kind.create(options), prefix + why)
        passed_over.append(why)
    for candidate, kind in BACKENDS.items():
        if not kind.isolates and kind.available(options)[0]:
            return Choice(kind.create(options), f"{candidate} ({'; '.join(passed_over)}): trusted code only")
    raise SandboxUnavailable(f"no sandbox backend can run here: {'; '.join(passed_over)}")
