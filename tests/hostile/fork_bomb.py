"""A fork bomb: forks children (each sleeps) as fast as it can, capped at 512 so that a sandbox
without a process limit cannot take the test machine down; reports how many it started.
Must happen: the process limit stops it well before the cap; every child dies with the job."""

import os
import time

import torch
from torch import nn

CAP = 512
started, error = 0, "none"
while started < CAP:
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.strerror or exc.__class__.__name__
        break
    if pid == 0:  # child: stay alive, holding a process slot
        time.sleep(120)
        os._exit(0)
    started += 1
raise RuntimeError(f"hostile: {started} processes started; fork error: {error}")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
