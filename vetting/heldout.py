"""Scoring outside the sandbox: held-out inputs go in, logits come out, metrics are computed here.

A prediction job sees the held-out inputs and never their targets, so no candidate code (patched
torch, a forged result file, a walk up the call stack) can reach the answers or the metric. What
it could still do is look ahead: every input window is in its memory at once, so it could output
at position t a prediction made from the token at t + 1, or from other examples. The audit catches
both: a second, independent job predicts the same windows, shuffled into other batches, with
everything after a random cut replaced by another window's tokens (text that looks just as real);
the outputs before each cut must agree. A check job gets the same audit on a few training windows,
originals and scrambled copies mixed in one secret order: its probes run in the candidate's own
process, so their verdict alone could be forged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

AUDIT_TOLERANCE = 1e-3  # relative to the logit scale; an honest model agrees to rounding error


class HeldoutError(ValueError):
    """Prediction outputs that cannot be scored; the message is one line."""


def audit_inputs(inputs: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The audit's inputs: rows in a shuffled `order`, each with its tokens from a random cut on
    replaced by another row's tokens at the same positions; and the cuts (row i keeps positions
    [0, cuts[i]) of inputs[i] unchanged; it sits at audit row `order.argsort()[i]`)."""
    rows, length = inputs.shape
    generator = torch.Generator().manual_seed(seed)
    cuts = torch.randint(1, max(2, length), (rows,), generator=generator)
    donors = (torch.arange(rows) + torch.randint(1, max(2, rows), (1,), generator=generator)) % rows
    tail = torch.arange(length)[None, :] >= cuts[:, None]
    order = torch.randperm(rows, generator=generator)
    return torch.where(tail, inputs[donors], inputs)[order], cuts, order


def check_audit_inputs(
    inputs: torch.Tensor, seed: int
) -> tuple[torch.Tensor, Callable[[torch.Tensor], str | None]]:
    """The causality audit of a check job, which has one job where training has two: the rows and
    their scrambled copies mixed into one secret order. Returns the job's inputs and the judge of
    the logits it writes for them (why they read the future or the batch, or None)."""
    rows = len(inputs)
    scrambled, cuts, order = audit_inputs(inputs, seed)
    mix = torch.randperm(2 * rows, generator=torch.Generator().manual_seed(seed + 1))
    mixed = torch.cat([inputs, scrambled])[mix]

    def judge(logits: torch.Tensor) -> str | None:
        unmixed = logits[mix.argsort()]
        return audit_violation(unmixed[:rows], unmixed[rows:], cuts, order)

    return mixed, judge


def audit_violation(
    logits: torch.Tensor, audit_logits: torch.Tensor, cuts: torch.Tensor, order: torch.Tensor
) -> str | None:
    """Why the predictions depend on future tokens or on other examples, or None when they don't."""
    audit_logits = audit_logits[order.argsort()]  # back to the original row order
    kept = torch.arange(logits.shape[1])[None, :] < cuts[:, None]
    difference = (logits - audit_logits).abs().amax(-1)[kept]
    scale = 1.0 + logits.abs().amax(-1)[kept]
    worst = (difference / scale).max().item() if difference.numel() else 0.0
    if not worst <= AUDIT_TOLERANCE:  # also catches NaN
        return (
            f"outputs change when later tokens or other examples change (relative difference {worst:.3g} "
            "before the cut): the predictions read the future or the batch"
        )
    return None


def load_job_file(path: Path, max_bytes: int, missing: str, unreadable: str) -> object:
    """A torch file a job wrote, loaded as plain data (`weights_only`: nothing is unpickled as code);
    a link, a missing or oversized file, or one that will not load is the job's failure."""
    if path.is_symlink() or not path.is_file():
        raise HeldoutError(missing)
    if path.stat().st_size > max_bytes:
        raise HeldoutError(f"{path.name} is larger than {max_bytes} bytes")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the job's failure, never the orchestrator's
        raise HeldoutError(f"{unreadable}: {type(exc).__name__}") from None


def read_logits(path: Path, shape: tuple[int, ...], max_bytes: int) -> torch.Tensor:
    """A job's logits.pt, loaded as plain tensor data and checked against the expected shape."""
    logits = load_job_file(path, max_bytes, "the job wrote no logits.pt", "logits.pt is not a saved tensor")
    if not isinstance(logits, torch.Tensor) or type(logits) is not torch.Tensor:
        raise HeldoutError("logits.pt does not hold a plain tensor")
    if logits.dtype != torch.float32 or tuple(logits.shape[:-1]) != shape[:-1] or logits.dim() != len(shape):
        raise HeldoutError(
            f"logits.pt has shape {tuple(logits.shape)} {logits.dtype}; expected {shape} float32"
        )
    return logits


def read_weights(path: Path, max_bytes: int) -> dict[str, torch.Tensor]:
    """The weights.pt a fit job wrote, as a state dict of plain tensors. Parameters are counted
    from it: the number the predict job's strict `load_state_dict` proves is the model that gets
    scored (persistent buffers count too; the built-in mixers keep none)."""
    state = load_job_file(path, max_bytes, "the job wrote no weights", "weights.pt is not a saved state dict")
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise HeldoutError("weights.pt does not hold a state dict of tensors")
    return state
