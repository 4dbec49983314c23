"""Cost measurement shared by the probes and the harness: FLOPs, work, and how they grow with length."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class _CountingMode(TorchDispatchMode):
    """A dispatch mode that sees every aten op. These modes never run under torch.compile, so they
    opt out of torch wrapping them in dynamo's `disable`: that wrap imports dynamo, which took 0.85 s
    of a 3.5 s `discover check`."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False


class _FlopCounter(_CountingMode):
    """torch's FLOP formulas (`flop_registry`: matrix products, convolutions, attention kernels)
    summed over the ops run. torch's own FlopCounterMode adds a per-module breakdown we do not use
    and imports dynamo on entry."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if (formula := flop_registry.get(func._overloadpacket)) is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def matmul_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matrix products `fn` runs, by torch's formulas.

    Attention is forced onto the math backend: the fused CPU kernel is invisible to the counter.
    """
    with sdpa_kernel([SDPBackend.MATH]), _FlopCounter() as counter:
        fn()
    return counter.flops


class _ElementCounter(_CountingMode):
    """Counts the elements every aten op writes: catches work the FLOP counter does not see
    (a quadratic cost built from broadcasting and reductions, a triangular solve)."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.elements += tensor.numel()
        return out


def elements_written(fn: Callable[[], Any]) -> int:
    with _ElementCounter() as counter:
        fn()
    return counter.elements


def growth_exponent(lengths: Sequence[int], costs: Sequence[float]) -> float:
    """Least-squares slope of log(cost) against log(length): 1 for linear, 2 for quadratic."""
    xs = [math.log(n) for n in lengths]
    ys = [math.log(max(c, 1.0)) for c in costs]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    variance = sum((x - mean_x) ** 2 for x in xs)
    return covariance / variance
