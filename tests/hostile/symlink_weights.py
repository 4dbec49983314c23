"""After the fit job has written its results (at interpreter exit), replaces /out/weights.pt with a
symlink to a host file (/etc/shadow), hoping the orchestrator copies that file into the next job.
Must happen: the orchestrator refuses the weights; the predict job is never prepared."""

import atexit
import json
import os

import torch
from torch import nn

with open("/job/job.json") as stream:
    ACTION = json.load(stream)["action"]


def _swap():
    for name, target in (("weights.pt", "/etc/shadow"),):
        try:
            os.symlink(target, f"/out/{name}.swap")
            os.replace(f"/out/{name}.swap", f"/out/{name}")
            print(f"hostile: /out/{name} -> {target}", flush=True)
        except OSError as exc:
            print(f"hostile: could not swap {name}: {exc}", flush=True)


if ACTION == "fit":
    atexit.register(_swap)


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
