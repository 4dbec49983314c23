"""Compression, after the MAD suite (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures").

The model reads `num_tokens` random content tokens and then one end-of-sequence marker; its state at
the marker (the backbone's final-normed output there) is all a small decoder, owned by the harness,
gets to rebuild the whole sequence from: slot i decodes `decoder(state + slot_embedding[i])` into
content token i. So the mixer must pack every token and its place into the one state vector.

The decoded tokens are laid out after the marker, so that every output depends only on inputs at or
before its position, as the causality probe and the held-out audit require of any task's model:
slot i sits at position num_tokens + i, on the marker and the blanks after it (which the model never
reads). Labels exist only at those positions.

    3 7 5 3 | . . .      (|: the marker, .: blank slots the decoder writes into)
            3 7 5 3      <- targets, all decoded from the state at |
"""

from __future__ import annotations

import torch
from pydantic import ValidationInfo, field_validator
from torch import nn

from discover.experiments.backbone import SequenceModel
from discover.experiments.tasks.base import IGNORE, Batch, TaskConfig
from discover.experiments.tasks.generated import GeneratedTask, GeneratedTaskConfig

BLANK = 0  # the slots after the marker; the model never reads them
MARKER = 1  # end of the content: the state here must hold it all
FIRST_CONTENT = 2  # content tokens are [2, vocab_size), drawn with replacement
GENERATOR_VERSION = 1  # bump when the generator changes what a seed produces


class CompressionConfig(GeneratedTaskConfig):
    vocab_size: int = 16
    seq_len: int = 32  # must be 2 * num_tokens: the content, the marker, then the other slots
    num_tokens: int = 16
    decoder_ratio: float = 4.0  # the decoder's hidden width, in multiples of d_model

    # After 1000 steps (one seed) softmax attention rebuilt 0.68 of the tokens, linear attention
    # 0.57, mamba2 0.54, gated_deltanet 0.45; after 2000 softmax 0.84, linear 0.69. Nothing saturates.
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50

    @field_validator("num_tokens")
    @classmethod
    def _fits_seq_len(cls, num_tokens: int, info: ValidationInfo) -> int:
        seq_len = info.data.get("seq_len")  # validated first: fields go in declaration order
        if num_tokens < 1 or seq_len != 2 * num_tokens:
            raise ValueError(f"seq_len ({seq_len}) must be 2 * num_tokens ({num_tokens}); set both")
        return num_tokens


def generate_compression(
    num_examples: int, vocab_size: int, num_tokens: int, generator: torch.Generator
) -> Batch:
    """A batch of compression sequences, vectorised over examples."""
    if vocab_size <= FIRST_CONTENT:
        raise ValueError(f"vocab_size {vocab_size} leaves no content tokens")
    content = torch.randint(FIRST_CONTENT, vocab_size, (num_examples, num_tokens), generator=generator)
    inputs = torch.full((num_examples, 2 * num_tokens), BLANK, dtype=torch.long)
    inputs[:, :num_tokens] = content
    inputs[:, num_tokens] = MARKER
    targets = torch.full_like(inputs, IGNORE)
    targets[:, num_tokens:] = content
    return Batch(inputs, targets)


class CompressionModel(SequenceModel):
    """The backbone with a decoder for its head: every content token is decoded from the state at
    the marker alone. Logits before the marker are zero (no label there)."""

    def __init__(self, mixer_class: type[nn.Module], cfg: CompressionConfig) -> None:
        super().__init__(mixer_class, **cfg.backbone())
        self.num_tokens = cfg.num_tokens
        hidden = int(cfg.decoder_ratio * cfg.d_model)
        # Unit scale, as the final-normed state it is added to: small slots would look alike.
        self.slots = nn.Parameter(torch.randn(cfg.num_tokens, cfg.d_model))
        # Replaces the per-position linear head, which this task never uses.
        self.head = nn.Sequential(
            nn.Linear(cfg.d_model, hidden), nn.GELU(), nn.Linear(hidden, cfg.vocab_size)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        marker = self.num_tokens
        state = self.hidden(tokens[:, : marker + 1])[:, marker]  # later positions are never read
        decoded = self.head(state[:, None, :] + self.slots)  # [batch, num_tokens, vocab]
        before = decoded.new_zeros(tokens.shape[0], marker, decoded.shape[-1])
        return torch.cat([before, decoded], dim=1)


class CompressionTask(GeneratedTask):
    name = "compression"
    description = (
        "Compression: random content tokens, then an end-of-sequence marker; a small decoder owned "
        "by the harness must rebuild the whole sequence, token by token and in order, from the "
        "model's state at the marker alone. Tests how much a mixer can pack into one position's "
        "state, positions included. Metric: accuracy over the reconstructed tokens of a fixed "
        "held-out set (higher is better)."
    )
    config_class = CompressionConfig
    generator_version = GENERATOR_VERSION

    def build_model(self, candidate_class: type[nn.Module], cfg: TaskConfig) -> CompressionModel:
        assert isinstance(cfg, CompressionConfig)
        return CompressionModel(candidate_class, cfg)

    def generate(self, cfg: CompressionConfig, count: int, generator: torch.Generator) -> Batch:
        return generate_compression(count, cfg.vocab_size, cfg.num_tokens, generator)
