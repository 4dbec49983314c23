"""Broken: projects to half the width, so the output shape is wrong."""

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
