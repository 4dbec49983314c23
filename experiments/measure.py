"""Cost measurement shared by the probes and the harness: FLOPs, work, and how they grow with length."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode


def matmul_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matrix products `fn` runs (torch's FLOP counter).

    Attention is forced onto the math backend: the fused CPU kernel is invisible to the counter.
    """
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class _ElementCounter(TorchDispatchMode):
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
