"""Replaces /out/metrics.jsonl with a symlink to a host file (/etc/shadow) over and over while
the job runs, so the orchestrator's live tail and its copy into the run folder read the host file.
Must happen: training still completes, and no host file's contents reach the run folder."""

import json
import os
import threading
import time

import torch
from torch import nn

with open("/job/job.json") as stream:
    ACTION = json.load(stream)["action"]


def _swap():
    try:
        os.symlink("/etc/shadow", "/out/metrics.swap")
        os.replace("/out/metrics.swap", "/out/metrics.jsonl")
    except OSError as exc:
        print(f"hostile: could not swap metrics.jsonl: {exc}", flush=True)


def _keep_swapping():
    for _ in range(200):
        _swap()
        time.sleep(0.05)


if ACTION == "fit":
    threading.Thread(target=_keep_swapping, daemon=True).start()


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
