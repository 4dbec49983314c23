"""Imports cleanly, then sleeps forever the first time `forward` runs.
Must happen: the job is killed at its time limit, with a reason that says so."""

import time

import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("hostile: sleeping in forward", flush=True)
        while True:
            time.sleep(3600)
        return self.proj(x)
