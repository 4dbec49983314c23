"""Hostile/broken: mixes each position with the NEXT one, so it sees the future."""

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x + torch.roll(x, shifts=-1, dims=1))
