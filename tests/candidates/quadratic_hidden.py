"""Quadratic without a matrix product: causal pairwise similarities built by broadcasting.

Its FLOPs are invisible to a matmul counter; the probes must still see cost ~ time^2.
"""

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, **kwargs):
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        T = x.shape[1]
        scores = (q[:, :, None, :1] * k[:, None, :, :1]).sum(-1)  # [B, T, T] from one channel
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        return self.out((weights[..., None] * v[:, None, :, :]).sum(2))
