"""What the generated (synthetic) tasks share: batches from a seeded generator, a held-out set no job
can regenerate, and accuracy on the labelled positions.

A generated task is its config and one `generate` function. The held-out set comes from
`test_seed`, which the sandbox replaces with a secret seed of its own unless the user fixed it
(`--set test_seed=N`), so a candidate cannot rebuild the answers with the task's own code.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import nn

from discover.experiments.tasks.base import IGNORE, Batch, SequenceTask, SequenceTaskConfig


def distinct_tokens(
    num_examples: int, count: int, low: int, high: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` distinct tokens from [low, high) per example: the top of a random ranking."""
    scores = torch.rand(num_examples, high - low, generator=generator)
    return scores.topk(count, dim=1).indices + low


def ask_queries(
    inputs: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    context: int,
    power_a: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Put each key once more after the `context` positions, in a random order, at offsets drawn
    without replacement with probability ~ (offset+1)^(a-1) (most soon, a few far); returns the
    targets: each key's value at its query, IGNORE elsewhere."""
    num_examples, seq_len = inputs.shape
    offsets = torch.arange(seq_len - context, dtype=torch.float)
    log_p = (power_a - 1) * torch.log1p(offsets)
    gumbel = -torch.log(-torch.log(torch.rand(num_examples, seq_len - context, generator=generator)))
    query_pos = context + (log_p + gumbel).topk(keys.shape[1], dim=1).indices  # Gumbel top-k
    order = torch.rand(keys.shape, generator=generator).argsort(dim=1)
    targets = torch.full_like(inputs, IGNORE)
    inputs.scatter_(1, query_pos, keys.gather(1, order))
    targets.scatter_(1, query_pos, values.gather(1, order))
    return targets


class GeneratedTaskConfig(SequenceTaskConfig):
    test_examples: int = 1000
    test_seed: int = 1_000_003  # the held-out set is fixed, independent of the training seed


class GeneratedTask(SequenceTask):
    metric = "accuracy"
    higher_is_better = True
    metric_optimum = 1.0
    metric_worst = 0.0  # so quality is the log-odds ratio, which resolves designs near chance too
    quality_scale = 2.0  # odds up e^2-fold: designs span chance to perfect recall, so this one is coarse
    reference_baselines = ("softmax_attention", "gated_deltanet")
    # Part of data_version: bump when the generator changes what a seed produces. None keeps the
    # plain "generated" that results recorded before versions were kept carry (MQAR's).
    generator_version: ClassVar[int | None] = None

    @abstractmethod
    def generate(self, cfg: GeneratedTaskConfig, count: int, generator: torch.Generator) -> Batch:
        """`count` examples drawn with `generator`, on the CPU."""

    def train_batches(self, cfg: GeneratedTaskConfig, seed: int, device: torch.device) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            inputs, targets = self.generate(cfg, cfg.batch_size, generator)
            yield Batch(inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True))

    def heldout(self, cfg: GeneratedTaskConfig, secret_seed: int | None = None) -> Batch:
        fixed = secret_seed is None or "test_seed" in cfg.model_fields_set  # the user's choice wins
        seed = cfg.test_seed if fixed else secret_seed
        return self.generate(cfg, cfg.test_examples, torch.Generator().manual_seed(seed))

    def score(
        self, logits: torch.Tensor, targets: torch.Tensor, cfg: GeneratedTaskConfig
    ) -> dict[str, float]:
        mask = targets != IGNORE
        scored, answers = logits[mask], targets[mask]
        accuracy = (scored.argmax(-1) == answers).float().mean().item()
        return {"accuracy": accuracy, "loss": nn.functional.cross_entropy(scored, answers).item()}

    def data_version(self, cfg: GeneratedTaskConfig) -> str:
        if self.generator_version is None:
            return super().data_version(cfg)
        return f"generated:{self.name}/v{self.generator_version}"
