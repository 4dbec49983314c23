"""Selective copying, after Gu & Dao 2023, "Mamba", and the MAD suite (Poli et al. 2024).

The sequence opens with `num_tokens` content tokens scattered at random positions among blank
tokens; then comes the separator, once per content token. At the i-th separator the model must
output the i-th content token: it writes the content out in order, skipping the blanks, with none of
its answers shown to it, so it must remember which tokens came and in what order. Labels exist only
at the separators.

    3 0 0 7 0 5 0 0 3 0 | | | |      (0: blank, |: separator)
                        3 7 5 3      <- targets
"""

from __future__ import annotations

import torch

from discover.experiments.tasks.base import IGNORE, Batch
from discover.experiments.tasks.generated import GeneratedTask, GeneratedTaskConfig

BLANK = 0
SEPARATOR = 1
FIRST_CONTENT = 2  # content tokens are [2, vocab_size), drawn with replacement
GENERATOR_VERSION = 1  # bump when the generator changes what a seed produces


class SelectiveCopyConfig(GeneratedTaskConfig):
    # With 8 tokens in 32 positions four baselines copied perfectly after 1000 steps; 16 in 48
    # spread them out (one seed: softmax attention 1.00, Gated DeltaNet 0.96, DeltaNet 0.94, Mamba2
    # 0.86, GLA 0.63, linear attention 0.40; benchmarks/difficulty.py).
    vocab_size: int = 16
    seq_len: int = 48  # the input section is seq_len - num_tokens long, the separators the rest
    num_tokens: int = 16

    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50


def generate_selective_copy(
    num_examples: int, vocab_size: int, seq_len: int, num_tokens: int, generator: torch.Generator
) -> Batch:
    """A batch of selective-copy sequences, vectorised over examples."""
    section = seq_len - num_tokens  # the input section; then one separator per content token
    if vocab_size <= FIRST_CONTENT:
        raise ValueError(f"vocab_size {vocab_size} leaves no content tokens")
    if num_tokens < 1 or section < num_tokens:
        raise ValueError(f"seq_len {seq_len} leaves no room for {num_tokens} content tokens and their copies")

    content = torch.randint(FIRST_CONTENT, vocab_size, (num_examples, num_tokens), generator=generator)
    # Distinct positions in the input section, in order: the top of a random ranking, sorted.
    ranking = torch.rand(num_examples, section, generator=generator)
    positions = ranking.topk(num_tokens, dim=1).indices.sort(dim=1).values

    inputs = torch.full((num_examples, seq_len), BLANK, dtype=torch.long)
    inputs.scatter_(1, positions, content)
    inputs[:, section:] = SEPARATOR

    targets = torch.full_like(inputs, IGNORE)
    targets[:, section:] = content
    return Batch(inputs, targets)


class SelectiveCopyTask(GeneratedTask):
    name = "selective_copy"
    description = (
        "Selective copying: content tokens scattered among blank tokens, then a separator once per "
        "content token; at the i-th separator the model must output the i-th content token, so it "
        "writes the content out in order, skipping the blanks, without seeing its own answers. "
        "Tests whether a mixer can select tokens by content, ignore filler and remember their "
        "order. Metric: accuracy over the separator positions of a fixed held-out set (higher is "
        "better)."
    )
    config_class = SelectiveCopyConfig
    generator_version = GENERATOR_VERSION

    def generate(self, cfg: SelectiveCopyConfig, count: int, generator: torch.Generator) -> Batch:
        return generate_selective_copy(count, cfg.vocab_size, cfg.seq_len, cfg.num_tokens, generator)
