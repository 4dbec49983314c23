"""The candidate contract: what a proposed sequence-mixing architecture is.

This is the one place the contract lives. Prompts quote `CONTRACT`, the probes test it, the harness
relies on it, and users' own baselines follow it.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a candidate is loaded, so hashing code needs no torch
    import torch

LOADED = itertools.count()  # numbers each loaded candidate module

CONTRACT = """\
A candidate is ONE Python file that defines:

    class Mixer(torch.nn.Module):
        def __init__(self, d_model: int, num_heads: int = 4, **kwargs): ...
        def forward(self, x: torch.Tensor) -> torch.Tensor: ...

- `x` has shape [batch, time, d_model]; the output has the same shape and dtype.
- Causal: output at position t may depend only on inputs at positions <= t.
- Batch-independent: each sample's output depends only on that sample.
- Accept and ignore unknown keyword arguments (**kwargs) so the task can pass options.
- Import only torch, einops, math, typing, functools, dataclasses, collections, itertools,
  operator, numbers, enum, abc and __future__ (of torch.utils, only torch.utils.checkpoint; no
  torch module that reaches files, processes or process-wide state). No file, network,
  subprocess or environment access; no changes to torch, builtins or any other module; no
  `global`, `type()`, computed `getattr` names, Tensor subclasses, or special methods other than
  `__init__`/`__repr__`; do not redefine nn.Module's own methods. Module level holds only
  imports, constants, functions and classes: nothing runs at import. A static check rejects
  files that break these rules.
- The task's fixed backbone wraps the Mixer: token embedding, N pre-norm residual blocks
  (Mixer, then an MLP where the task uses one), final norm, output head. The backbone, data,
  optimiser, schedule and evaluation belong to the trusted harness, not to the candidate.
- Optional: `forward_reference(x)`, a slow, obviously-correct form (e.g. a token-by-token
  recurrence) that tests compare against the fast `forward`.
"""


class CandidateError(Exception):
    """A candidate file that cannot be used; the message is one line a person or an LLM can act on."""


def code_hash(source: str) -> str:
    """Hash of the candidate's source text, with trailing whitespace and blank lines ignored."""
    lines = [line.rstrip() for line in source.strip().splitlines()]
    normalized = "\n".join(line for line in lines if line)
    return hashlib.sha256(normalized.encode()).hexdigest()[:16]


def load_mixer_class(path: str | Path) -> type[torch.nn.Module]:
    """Import a candidate file and return its `Mixer` class, or raise CandidateError.

    The file is executed as a fresh module under a name no other load shares, so two candidates
    never see each other. This runs untrusted code: call it only inside a sandbox.
    """
    import torch

    path = Path(path)
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CandidateError(f"cannot read candidate file {path}: {exc}") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise CandidateError(f"syntax error at line {exc.lineno}: {exc.msg}") from None

    # A name of its own in `sys.modules`: torch.compile looks a function's module up there.
    module = types.ModuleType(f"candidate_{path.stem}_{next(LOADED)}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        del sys.modules[module.__name__]
        raise CandidateError(f"import failed: {describe_error(exc)}") from None

    mixer = module.__dict__.get("Mixer")
    if mixer is None:
        raise CandidateError("no class named `Mixer` is defined at module level")
    if not (isinstance(mixer, type) and issubclass(mixer, torch.nn.Module)):
        raise CandidateError("`Mixer` must be a class that subclasses torch.nn.Module")
    _check_init_signature(mixer)
    return mixer


def _check_init_signature(mixer: type) -> None:
    params = inspect.signature(mixer.__init__).parameters
    if "d_model" not in params:
        raise CandidateError("`Mixer.__init__` must take `d_model` as an argument")
    if "num_heads" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise CandidateError("`Mixer.__init__` must accept `num_heads` (or **kwargs)")


def describe_error(exc: BaseException) -> str:
    """`Type: message` on one line, cut to a readable length."""
    message = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
