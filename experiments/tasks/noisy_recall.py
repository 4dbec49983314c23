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

from collections.abc import Iterator

import torch
from pydantic import Field
from torch import nn

from discover.experiments.tasks.base import IGNORE, Batch, SequenceTask, SequenceTaskConfig

# Bump when the generator changes what a seed produces, so that `discover reproduce` says so.
GENERATOR_VERSION = 1


class NoisyRecallConfig(SequenceTaskConfig):
    # Token ids: [0, noise_vocab) noise, then keys, then values (the rest split in halves).
    vocab_size: int = 40
    noise_vocab: int = 8
    seq_len: int = 32
    num_kv_pairs: int = 4
    noise_rate: float = Field(0.25, ge=0.0, lt=1.0)  # share of the context section that is noise
    power_a: float = 0.01  # exponent of the query-gap power law p(gap) ~ gap^(a-1), as MQAR's
    test_examples: int = 1000
    test_seed: int = 1_000_003  # the held-out set is fixed, independent of the training seed

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

    def sample_distinct(count: int, low: int, high: int) -> torch.Tensor:
        # `count` distinct values from [low, high) per example: the top of a random ranking.
        scores = torch.rand(num_examples, high - low, generator=generator)
        return scores.topk(count, dim=1).indices + low

    keys = sample_distinct(num_kv_pairs, key_start, value_start)
    values = sample_distinct(num_kv_pairs, value_start, value_start + half)

    # Everything that is not a key, value or query is noise.
    inputs = torch.randint(0, noise_vocab, (num_examples, seq_len), generator=generator)

    # Where the pairs start: the context is a shuffle of num_kv_pairs two-token pairs and single
    # noise tokens. Choosing which of those units are pairs (sorted), the i-th pair starts i
    # positions later than its unit index, since each earlier pair is one position longer.
    units = context - num_kv_pairs
    pair_units = sample_distinct(num_kv_pairs, 0, units).sort(dim=1).values
    starts = pair_units + torch.arange(num_kv_pairs)
    inputs.scatter_(1, starts, keys)
    inputs.scatter_(1, starts + 1, values)

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


class NoisyRecallTask(SequenceTask):
    name = "noisy_recall"
    description = (
        "Noisy associative recall: key-value token pairs at irregular positions among noise tokens "
        "from a vocabulary of their own; later each key reappears as a query among more noise and "
        "the model must output its value. Tests whether a mixer can store associations by content "
        "while ignoring irrelevant tokens. Metric: accuracy on query positions of a fixed held-out "
        "set (higher is better)."
    )
    config_class = NoisyRecallConfig
    metric = "accuracy"
    higher_is_better = True
    metric_optimum = 1.0
    metric_worst = 0.0  # so quality is the log-odds ratio, which resolves designs near chance too
    quality_scale = 2.0  # as MQAR's: designs span chance to perfect recall, so the scale is coarse
    reference_baselines = ("softmax_attention", "gated_deltanet")

    def _generate(self, cfg: NoisyRecallConfig, count: int, generator: torch.Generator) -> Batch:
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

    def train_batches(self, cfg: NoisyRecallConfig, seed: int, device: torch.device) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed)
        while True:
            inputs, targets = self._generate(cfg, cfg.batch_size, generator)
            yield Batch(inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True))

    def heldout(self, cfg: NoisyRecallConfig, secret_seed: int | None = None) -> Batch:
        fixed = secret_seed is None or "test_seed" in cfg.model_fields_set  # the user's choice wins
        seed = cfg.test_seed if fixed else secret_seed
        return self._generate(cfg, cfg.test_examples, torch.Generator().manual_seed(seed))

    def score(self, logits: torch.Tensor, targets: torch.Tensor, cfg: NoisyRecallConfig) -> dict[str, float]:
        mask = targets != IGNORE
        scored, answers = logits[mask], targets[mask]
        accuracy = (scored.argmax(-1) == answers).float().mean().item()
        return {"accuracy": accuracy, "loss": nn.functional.cross_entropy(scored, answers).item()}

    def data_version(self, cfg: NoisyRecallConfig) -> str:
        return f"generated:{self.name}/v{GENERATOR_VERSION}"
