"""Imports cleanly, then spins forever inside `forward` on pure torch arithmetic (no sleep, no
system call a static check could name).
Must happen: the job is killed at its time limit, with a reason that says so."""

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("hostile: spinning in forward", flush=True)
        y = x.detach()
        while bool(y.abs().sum() >= 0):  # always true: a busy loop in tensor ops
            y = y * 1.0
        return self.proj(x)
