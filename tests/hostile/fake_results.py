"""Forges its own result files: in the check job a passing verdict.json, and logits of the right
shape for the causality audit (its mixer reads the future, so honest probes would fail it); in the
predict job a perfect evaluation.json and metrics-shaped logits; then exits 0 before the harness
runs. (forge_fit_summary.py forges the fit job's summary.)
Must happen: the orchestrator reports none of the forged numbers."""

import json
import os

import torch
from torch import nn

with open("/job/job.json") as stream:
    JOB = json.load(stream)


if JOB["action"] == "check":
    with open("/out/verdict.json", "w") as stream:
        probe = {"name": "causality", "passed": True, "reason": ""}
        json.dump({"candidate": "fake_results", "task": JOB["task"], "passed": True, "probes": [probe]}, stream)
    # and logits of the right shape for the audit's inputs, from a rule that reads the future
    inputs = torch.load("/job/inputs.pt")
    future = inputs.flip(1).cumsum(1).flip(1).float()
    torch.save(future[..., None].repeat(1, 1, int(inputs.max()) + 1), "/out/logits.pt")
    os._exit(0)
if JOB["action"] == "predict":
    with open("/out/evaluation.json", "w") as stream:
        json.dump({"metrics": {"accuracy": 1.0, "loss": 0.0, "bits_per_byte": 0.0}}, stream)
    torch.save({"accuracy": torch.tensor(1.0)}, "/out/logits.pt")
    os._exit(0)


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        future = x.flip(1).cumsum(1).flip(1)  # position t sees every later position
        return self.proj(future)
