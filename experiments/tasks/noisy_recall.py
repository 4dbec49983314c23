"""Noisy associative recall: MQAR with noise tokens interleaved, after the MAD suite's task
(Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures").

The sequence opens with `num_kv_pairs` key-value pairs spread over a context section in which a
share `noise_rate` of the positions hold noise tokens, drawn from a vocabulary of their own; a key
is always followed directly by its value. After it, each key appears once more as a query among
noise tokens, at power-law gaps as in MQAR, and the model must emit its value there. The pairs sit
at irregular positions, so a mixer cannot tell keys from values by position: it must recognise them
by content and ignore the noise. Labels exist only at query positions.

    n k1 v1 n n k2 v2 n k3 v3 n n  n k2 n n k1 n n n k3 n      (n: a random noise token)
                                      ^v2    ^v1       ^v3     <- targets
"""

from __future__ import annotations

import torch
from pydantic import Field

from discover.experiments.tasks.base import Batch
from discover.experiments.tasks.generated import (
    GeneratedTask,
    GeneratedTaskConfig,
    ask_queries,
    distinct_tokens,
)

# Bump when the generator changes what a seed produces, so that `discover reproduce` says so.
GENERATOR_VERSION = 1


class NoisyRecallConfig(GeneratedTaskConfig):
    # Token ids: [0, noise_vocab) noise, then keys, then values (the rest split in halves).
    vocab_size: int = 40
    noise_vocab: int = 8
    seq_len: int = 32
    num_kv_pairs: int = 4
    noise_rate: float = Field(0.25, ge=0.0, lt=1.0)  # share of the context section that is noise
    power_a: float = 0.01  # exponent of the query-gap power law p(gap) ~ gap^(a-1), as MQAR's

    # Mixer-only blocks: with the MLPs softmax attention had barely left chance after 1500 to 2000
    # steps (noise between the pairs slows it far more than MQAR's layout does). Without them, at this
    # noise_rate, it learns the task between steps 800 and 1500 (seeds 0-5), in cheaper steps; a run
    # can stall halfway for a few hundred steps, hence 3000. At noise_rate 0.5 it learns far later.
    mlp_ratio: float = 0.0
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50


def context_length(num_kv_pairs: int, noise_rate: float) -> int:
    """Positions of the context section: the pairs' 2 * num_kv_pairs plus their share of noise."""
    return round(2 * num_kv_pairs / (1 - noise_rate))


def generate_noisy_recall(
    num_examples: int,
    vocab_size: int,
    noise_vocab: int,
    seq_len: int,
    num_kv_pairs: int,
    noise_rate: float,
    power_a: float,
    generator: torch.Generator,
) -> Batch:
    """A batch of noisy-recall sequences, vectorised over examples."""
    half = (vocab_size - noise_vocab) // 2
    key_start, value_start = noise_vocab, noise_vocab + half
    context = context_length(num_kv_pairs, noise_rate)
    query_region = seq_len - context
    if noise_vocab < 1:
        raise ValueError(f"noise_vocab {noise_vocab} leaves no noise tokens")
    if half < num_kv_pairs:
        raise ValueError(f"vocab_size {vocab_size} less noise_vocab {noise_vocab} has too few keys")
    if query_region < num_kv_pairs:
        raise ValueError(f"seq_len {seq_len} leaves no room for {num_kv_pairs} queries")

    keys = distinct_tokens(num_examples, num_kv_pairs, key_start, value_start, generator)
    values = distinct_tokens(num_examples, num_kv_pairs, value_start, value_start + half, generator)

    # Everything that is not a key, value or query is noise.
    inputs = torch.randint(0, noise_vocab, (num_examples, seq_len), generator=generator)

    # Where the pairs start: the context is a shuffle of num_kv_pairs two-token pairs and single
    # noise tokens. Choosing which of those units are pairs (sorted), the i-th pair starts i
    # positions later than its unit index, since each earlier pair is one position longer.
    units = context - num_kv_pairs
    pair_units = distinct_tokens(num_examples, num_kv_pairs, 0, units, generator).sort(dim=1).values
    starts = pair_units + torch.arange(num_kv_pairs)
    inputs.scatter_(1, starts, keys)
    inputs.scatter_(1, starts + 1, values)

    targets = ask_queries(inputs, keys, values, context, power_a, generator)
    return Batch(inputs, targets)


class NoisyRecallTask(GeneratedTask):
    name = "noisy_recall"
    description = (
        "Noisy associative recall: key-value token pairs at irregular positions among noise tokens "
        "from a vocabulary of their own; later each key reappears as a query among more noise and "
        "the model must output its value. Tests whether a mixer can store associations by content "
        "while ignoring irrelevant tokens. Metric: accuracy on query positions of a fixed held-out "
        "set (higher is better)."
    )
    config_class = NoisyRecallConfig
    generator_version = GENERATOR_VERSION

    def generate(self, cfg: NoisyRecallConfig, count: int, generator: torch.Generator) -> Batch:
        return generate_noisy_recall(
            count,
            cfg.vocab_size,
            cfg.noise_vocab,
            cfg.seq_len,
            cfg.num_kv_pairs,
            cfg.noise_rate,
            cfg.power_a,
            generator,
        )
