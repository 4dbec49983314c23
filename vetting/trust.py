"""The one trust policy: which code may skip the static check and run on the process backend.

Trust is a property of the code, never of where a file lies or what it is called: code is trusted
when it is, character for character, a built-in baseline's file, or when discover itself rendered
it (from its grammar). Which origins mean "rendered by discover" is decided above this layer (the
proposers that render designs know), so callers pass them in as data.
"""

from __future__ import annotations

from discover.experiments.baselines import builtin_baselines


def is_trusted(code: str, origin: str | None = None, trusted_origins: frozenset[str] = frozenset()) -> bool:
    """Whether `code` (with the `origin` the study recorded for it, if any) is trusted."""
    if origin is not None and origin in trusted_origins:
        return True
    return is_builtin_baseline(code)


def is_builtin_baseline(code: str) -> bool:
    """Whether `code` is exactly the text of one of the built-in baseline files."""
    return any(path.read_text() == code for path in builtin_baselines().values())
