"""Sends SIGKILL to its parent, to pid 1 and to every process it may signal (kill -1), hoping to
take down the orchestrator or the container runtime, then fails with a report of what happened.
Must happen: only sandbox processes can be reached; the host and the next job are unaffected."""

import os
import signal
import time

import torch
from torch import nn

report = []
for target in (os.getppid(), 1, -1):
    try:
        os.kill(target, signal.SIGKILL)
        report.append(f"{target}: sent")
    except OSError as exc:
        report.append(f"{target}: {exc.strerror}")
time.sleep(1)
raise RuntimeError("hostile: kill attempts " + ", ".join(report))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
