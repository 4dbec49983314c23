"""At the end of the fit job (at interpreter exit) replaces /out/fit.json with a symlink to a host
file (/etc/passwd), so that an orchestrator that follows links reads a host file as the job's result.
Must happen: the orchestrator refuses the link and the job fails with a clear reason."""

import atexit
import json
import os

import torch
from torch import nn

with open("/job/job.json") as stream:
    ACTION = json.load(stream)["action"]


def _swap():
    os.symlink("/etc/passwd", "/out/fit.swap")
    os.replace("/out/fit.swap", "/out/fit.json")
    print("hostile: /out/fit.json -> /etc/passwd", flush=True)


if ACTION == "fit":
    atexit.register(_swap)


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
