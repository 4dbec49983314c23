"""A causal mixer that trains honestly but rewrites fit.json: from an exit handler, and from a thread
that waits for the harness to write the file, with near-infinite throughput, one parameter, zero
loss, one FLOP per token and a kilobyte of memory.
Must happen: no forged number is reported. The run succeeds with the orchestrator's own parameter
count, throughput and peak memory, or, where the thread truncated fit.json as the job exited, the
run fails because its fit.json is unreadable: the job shares a process with the candidate, so the
file's integrity cannot be promised, only that nothing in it decides a score."""

import atexit
import json
import os
import threading
import time

import torch
from torch import nn

FORGED = {"tokens_per_s": 1e12, "final_train_loss": 0.0, "flops_per_token": 1.0, "params": 1, "peak_memory_mb": 0.001}


def _forge() -> None:
    try:
        with open("/out/fit.json") as stream:
            summary = json.load(stream)
        summary.update(FORGED)
        with open("/out/fit.json", "w") as stream:
            json.dump(summary, stream)
    except (OSError, ValueError):
        pass


def _keep_forging() -> None:
    while True:
        if os.path.exists("/out/fit.json"):
            _forge()
        time.sleep(0.001)


with open("/job/job.json") as stream:
    if json.load(stream)["action"] == "fit":
        atexit.register(_forge)
        threading.Thread(target=_keep_forging, daemon=True).start()


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
