"""While the fit job trains, plants /out/fit.json.tmp as a symlink to /tmp/fit-real.json: the
harness writes its summary through the link and renames the link itself to fit.json, so the job
ends with fit.json pointing at /tmp/fit-real.json, a path that on the host is a host file.
Must happen: the orchestrator refuses the link and the job fails with a clear reason."""

import json
import os

import torch
from torch import nn

with open("/job/job.json") as stream:
    ACTION = json.load(stream)["action"]


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if ACTION == "fit" and not os.path.lexists("/out/fit.json.tmp"):
            os.symlink("/tmp/fit-real.json", "/out/fit.json.tmp")
            print("hostile: /out/fit.json.tmp -> /tmp/fit-real.json", flush=True)
        return self.proj(x)
