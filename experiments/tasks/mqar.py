"""Multi-query associative recall (MQAR), after Arora et al. 2023, "Zoology".

A sequence opens with `num_kv_pairs` key-value pairs (keys from the lower half of the vocabulary,
values from the upper half); later, each key appears once more as a query, and the model must
emit its value at the query position. Query positions follow a power law, so most queries come
soon after the pairs and a few come far away. Labels exist only at query positions.

    k1 v1 k2 v2 ... kD vD  0 0 k2 0 k1 0 0 ... 0 kD 0
                                  ^v2    ^v1          ^vD   <- targets
"""

from __future__ import annotations

import torch

from discover.experiments.tasks.base import Batch
from discover.experiments.tasks.generated import (
    GeneratedTask,
    GeneratedTaskConfig,
    ask_queries,
    distinct_tokens,
)

FILLER = 0  # token at positions that are neither pairs nor queries


class MQARConfig(GeneratedTaskConfig):
    # Defaults train one candidate in 1.5 (attention) to 4 minutes (delta-rule mixers) on 2 CPU
    # cores and still separate mixers that can recall from those that cannot (benchmarks/RESULTS.md).
    # Softmax attention learns recall only after a phase transition (it must first grow a
    # previous-token head); with this vocabulary and length it comes at ~700-1100 steps.
    vocab_size: int = 32
    seq_len: int = 32
    num_kv_pairs: int = 4
    power_a: float = 0.01  # exponent of the query-gap power law p(gap) ~ gap^(a-1)

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

    keys = distinct_tokens(num_examples, num_kv_pairs, 1, half, generator)  # 0 is the filler
    values = distinct_tokens(num_examples, num_kv_pairs, half, vocab_size, generator)

    inputs = torch.full((num_examples, seq_len), FILLER, dtype=torch.long)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values

    targets = ask_queries(inputs, keys, values, context, power_a, generator)
    return Batch(inputs, targets)


class MQARTask(GeneratedTask):
    name = "mqar"
    description = (
        "Multi-query associative recall: the sequence opens with key-value token pairs; later each "
        "key reappears as a query and the model must output its value. Tests whether a mixer can "
        "store many associations in its state and retrieve them by content. Metric: accuracy on "
        "query positions of a fixed held-out set (higher is better)."
    )
    config_class = MQARConfig

    def generate(self, cfg: MQARConfig, count: int, generator: torch.Generator) -> Batch:
        return generate_mqar(count, cfg.vocab_size, cfg.seq_len, cfg.num_kv_pairs, cfg.power_a, generator)
