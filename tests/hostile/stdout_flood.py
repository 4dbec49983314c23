"""Floods the log: writes 100 MB to stdout and 10 MB to stderr at import, then fails.
Must happen: the job ends promptly; only the capped log tail (log_kb) reaches the orchestrator."""

import sys

import torch
from torch import nn

line = "hostile flood " + "x" * 1009 + "\n"  # 1 KiB per line
for _ in range(100 * 1024):
    sys.stdout.write(line)
for _ in range(10 * 1024):
    sys.stderr.write(line)
sys.stdout.flush()
raise RuntimeError("hostile: wrote 110 MB of output")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
