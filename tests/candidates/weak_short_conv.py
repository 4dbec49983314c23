"""A deliberately weak mixer: a causal depthwise convolution over the last 4 positions.

It sees only a short local window, so it cannot recall a value stored far back in the sequence;
tests use it as the negative control that MQAR must not reward.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, kernel_size: int = 4, **kwargs):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, bias=False)
        self.in_proj = nn.Linear(d_model, 2 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.in_proj(x).chunk(2, dim=-1)
        # Left padding only, so position t sees t-3..t.
        value = F.pad(value.transpose(1, 2), (self.kernel_size - 1, 0))
        value = self.conv(value).transpose(1, 2)
        return self.out_proj(value * F.silu(gate))
