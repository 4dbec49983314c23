"""Multi-query associative recall (MQAR), after Arora et al. 2023, "Zoology".

A sequence opens with `num_kv_pairs` key-value pairs (keys from the lower half of the vocabulary,
values from the upper half); later, each key appears once more as a query, and the model must
emit its value at the query position. Query positions follow a power law, so most queries come
soon after the pairs and a few come far away. Labels exist only at query positions.

    k1 v1 k2 v2 ... kD vD  0 0 k2 0 k1 0 0 ... 0 kD 0
                                  ^v2    ^v1          ^vD   <- targets
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from discover.experiments.tasks.base import IGNORE, Batch, SequenceTask, SequenceTaskConfig

FILLER = 0  # token at positions that are neither pairs nor queries


class MQARConfig(SequenceTaskConfig):
    # Defaults train one candidate in 1.5 (attention) to 4 minutes (delta-rule mixers) on 2 CPU
    # cores and still separate mixers that can recall from those that cannot (benchmarks/RESULTS.md).
    # Softmax attention learns recall only after a phase transition (it must first grow a
    # previous-token head); with this vocabulary and length it comes at ~700-1100 steps.
    vocab_size: int = 32
    seq_len: int = 32
    num_kv_pairs: int = 4
    power_a: float = 0.01  # exponent of the query-gap power law p(gap) ~ gap^(a-1)
    test_examples: int = 1000
    test_seed: int = 1_000_003  # the held-out set is fixed, independent of the training seed

    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1


def generate_mqar(
    num_examples: int,
    vocab_size: int,
    seq_len: int,
    num_kv_pairs: int,
    power_a: float,
    generator: torch.Generator,
) -> Batch:
    """A batch of MQAR sequences, vectorised over examples (no per-example Python loop)."""
    half = vocab_size // 2
    context = 2 * num_kv_pairs
    query_region = seq_len - context
    if half - 1 < num_kv_pairs:
        raise ValueError(f"vocab_size {vocab_size} has too few keys for {num_kv_pairs} pairs")
    if query_region < num_kv_pairs:
        raise ValueError(f"seq_len {seq_len} leaves no room for {num_kv_pairs} queries")

    def sample_distinct(count: int, low: int, high: int) -> torch.Tensor:
        # `count` distinct tokens from [low, high) per example: the top of a random ranking.
        scores = torch.rand(num_examples, high - low, generator=generator)
        return scores.topk(count, dim=1).indices + low

    keys = sample_distinct(num_kv_pairs, 1, half)  # 0 is the filler
    values = sample_distinct(num_kv_pairs, half, vocab_size)

    inputs = torch.full((num_examples, seq_len), FILLER, dtype=torch.long)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values

    # Query offsets without replacement, with probability ~ (offset+1)^(a-1): Gumbel top-k.
    offsets = torch.arange(query_region, dtype=torch.float)
    log_p = (power_a - 1) * torch.log1p(offsets)
    gumbel = -torch.log(-torch.log(torch.rand(num_examples, query_region, generator=generator)))
    query_pos = context + (log_p + gumbel).topk(num_kv_pairs, dim=1).indices

    # Each key is queried once, in a random order.
    order = torch.rand(num_examples, num_kv_pairs, generator=generator).argsort(dim=1)
    targets = torch.full_like(inputs, IGNORE)
    inputs.scatter_(1, query_pos, keys.gather(1, order))
    targets.scatter_(1, query_pos, values.gather(1, order))
    return Batch(inputs, targets)


class MQARTask(SequenceTask):
    name = "mqar"
    description = (
        "Multi-query associative recall: the sequence opens with key-value token pairs; later each "
        "key reappears as a query and the model must output its value. Tests whether a mixer can "
        "store many associations in its state and retrieve them by content. Metric: accuracy on "
        "query positions of a fixed held-out set (higher is better)."
    )
    config_class = MQARConfig
    metric = "accuracy"
    higher_is_better = True
    metric_optimum = 1.0
    metric_worst = 0.0  # so quality is the log-odds ratio, which resolves designs near chance too
    quality_scale = 2.0  # odds up e^2-fold: designs span 0.05 to 1.0 accuracy, so this one is coarse
    reference_baselines = ("softmax_attention", "gated_deltanet")

    def _generate(self, cfg: MQARConfig, count: int, generator: torch.Generator) -> Batch:
        return generate_mqar(count, cfg.vocab_size, cfg.seq_len, cfg.num_kv_pairs, cfg.power_a, generator)

    def train_batches(self, cfg: MQARConfig, seed: int, device: torch.device) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            inputs, targets = self._generate(cfg, cfg.batch_size, generator)
            yield Batch(inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True))

    def heldout(self, cfg: MQARConfig, secret_seed: int | None = None) -> Batch:
        fixed = secret_seed is None or "test_seed" in cfg.model_fields_set  # the user's choice wins
        seed = cfg.test_seed if fixed else secret_seed
        return self._generate(cfg, cfg.test_examples, torch.Generator().manual_seed(seed))

    def score(self, logits: torch.Tensor, targets: torch.Tensor, cfg: MQARConfig) -> dict[str, float]:
        mask = targets != IGNORE
        scored, answers = logits[mask], targets[mask]
        accuracy = (scored.argmax(-1) == answers).float().mean().item()
        return {"accuracy": accuracy, "loss": nn.functional.cross_entropy(scored, answers).item()}
