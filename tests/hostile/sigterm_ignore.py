"""Installs handlers that ignore SIGTERM, SIGINT and SIGHUP, then busy-loops in `forward`,
so that a sandbox that only asks politely never stops it.
Must happen: the job is still killed at its time limit (SIGKILL), with a reason that says so."""

import signal

import torch
from torch import nn

for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda number, frame: print(f"hostile: ignored signal {number}", flush=True))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("hostile: ignoring SIGTERM and looping", flush=True)
        while True:
            pass
        return self.proj(x)
