"""Replaces /out/weights.pt, at the end of the fit job, with a torch file whose pickle runs
os.system on load (touching /out/pickle-ran and /tmp/discover-hostile-pickle_weights).
Must happen: nobody unpickles code: the predict job's weights-only load refuses the file."""

import atexit
import json
import os

import torch
from torch import nn

with open("/job/job.json") as stream:
    ACTION = json.load(stream)["action"]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /out/pickle-ran /tmp/discover-hostile-pickle_weights",))


def _plant():
    torch.save({"blocks.0.mixer.proj.weight": _Payload()}, "/out/weights.pt")
    print("hostile: planted a pickle payload in weights.pt", flush=True)


if ACTION == "fit":
    atexit.register(_plant)


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
