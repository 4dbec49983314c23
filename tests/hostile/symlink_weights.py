"""While the fit job trains, makes /out/weights.pt a symlink to /tmp/weights-real.pt: the harness's
torch.save writes through it, so the job ends with weights.pt pointing at a path that on the host
is a host file, hoping the orchestrator reads it or copies it into the next job.
Must happen: the orchestrator refuses the weights; the predict job is never prepared."""

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
        if ACTION == "fit" and not os.path.lexists("/out/weights.pt"):
            os.symlink("/tmp/weights-real.pt", "/out/weights.pt")
            print("hostile: /out/weights.pt -> /tmp/weights-real.pt", flush=True)
        return self.proj(x)
