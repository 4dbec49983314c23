"""Zero-cost signals: what an untrained model says about a design before any training step.

    score = naswot_of(Path("design.py"), spec)   # spec: the study's screening RunSpec

NASWOT (Mellor et al. 2021, "Neural Architecture Search without Training"): feed one training batch
through the untrained model, read the sign pattern of each example's final states as a binary
code, and score the log-determinant of the examples' Hamming-similarity kernel. Designs whose
examples look alike at initialisation score low. `benchmarks/zero_cost.py` measured it and four
other signals against MQAR screening fitness over 303 grammar designs: rho -0.48 (bootstrap
-0.56 to -0.38), the strongest; parameter count, gradient norm and SNIP stayed under 0.3 in size.

The candidate runs in this process: call it only for trusted code (the grammar's renditions).
"""

from __future__ import annotations

from pathlib import Path

import torch

from discover.experiments.contract import load_mixer_class
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks.base import Batch

EXAMPLES = 64  # rows of the kernel: MQAR's batch, as measured; cheap enough for a whole grammar


@torch.no_grad()
def naswot(model: torch.nn.Module, tokens: torch.Tensor) -> float:
    """The log-determinant of the examples' Hamming-similarity kernel over the signs of the final
    states of `model` (a `SequenceModel`: it has `hidden`) for `tokens` [examples, time]."""
    codes = (model.hidden(tokens) > 0).flatten(1).double()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T  # positions where two codes agree
    return float(torch.linalg.slogdet(kernel)[1])


def untrained_model(candidate: Path, spec: RunSpec) -> torch.nn.Module:
    """The trusted candidate inside `spec`'s task model, initialised from seed 0."""
    torch.manual_seed(0)
    return spec.task.build_model(load_mixer_class(candidate), spec.config)


def first_batch(spec: RunSpec) -> Batch:
    """The task's first training batch of seed 0, on the CPU: what every signal reads."""
    return next(iter(spec.task.train_batches(spec.config, 0, torch.device("cpu"))))


def naswot_of(candidate: Path, spec: RunSpec) -> float:
    """NASWOT of the trusted candidate, untrained, on the first EXAMPLES examples of `first_batch`."""
    return naswot(untrained_model(candidate, spec), first_batch(spec).inputs[:EXAMPLES])
