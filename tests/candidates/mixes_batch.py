"""Broken: adds the batch mean, so one sample's output depends on the others."""

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x + x.mean(dim=0, keepdim=True))
