"""A plain linear mixer whose every instance also holds 256 MB it never uses: a known memory
footprint, for the test that the sandbox measures a job's peak memory itself."""

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.ballast = torch.ones(64 << 20)  # 256 MB of float32, written, so resident

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
