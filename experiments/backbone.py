"""The fixed sequence backbone that wraps a candidate Mixer; owned by the harness, not the candidate.

token embedding -> N x [x + Mixer(RMSNorm(x)); x + MLP(RMSNorm(x))] -> RMSNorm -> linear head
"""

from __future__ import annotations

import torch
from torch import nn


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(nn.functional.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, mixer: nn.Module, d_model: int, mlp_ratio: float) -> None:
        super().__init__()
        self.mixer_norm = nn.RMSNorm(d_model)
        self.mixer = mixer
        # mlp_ratio 0 gives a mixer-only block, as some recall studies use.
        self.mlp = SwiGLU(d_model, int(mlp_ratio * d_model)) if mlp_ratio > 0 else None
        self.mlp_norm = nn.RMSNorm(d_model) if self.mlp is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.mixer(self.mixer_norm(x))
        if type(mixed) is not torch.Tensor:  # a Tensor subclass could override the ops after it
            raise TypeError(f"Mixer returned {type(mixed).__name__}, not a plain torch.Tensor")
        x = x + mixed
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x


class SequenceModel(nn.Module):
    """Token-in, logits-out model: the candidate decides only what `mixer_class` computes."""

    def __init__(
        self,
        mixer_class: type[nn.Module],
        vocab_size: int,
        d_model: int,
        n_layers: int,
        num_heads: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(
            Block(mixer_class(d_model=d_model, num_heads=num_heads), d_model, mlp_ratio)
            for _ in range(n_layers)
        )
        self.final_norm = nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self._init_backbone(n_layers)

    def _init_backbone(self, n_layers: int) -> None:
        # Only the backbone's own weights: a candidate's initialisation is part of its design.
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)
        for block in self.blocks:
            if block.mlp is not None:
                nn.init.normal_(block.mlp.gate_up.weight, std=0.02)
                # Scaled residual projections keep the residual stream's variance flat with depth.
                nn.init.normal_(block.mlp.down.weight, std=0.02 / (2 * n_layers) ** 0.5)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """The final-normed states [batch, time, d_model] that the head reads."""
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(tokens))

    def mixers(self) -> list[nn.Module]:
        return [block.mixer for block in self.blocks]
