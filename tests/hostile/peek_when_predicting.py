"""Behaves causally whenever gradients are on (the probes' causality check, training) and reads the
next token when they are off, as in prediction: at each position it mixes in the following
position's input, which for language modelling is the answer itself.
Must happen: the causal audit of the predictions rejects the run; no score is reported."""

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.proj(x)
        ahead = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)
        return self.proj(x + ahead)
