"""Reads host secrets: /etc/shadow, root's home (ssh keys, shell history, docker credentials),
/home, and the test's root-only secret file under its corpus folder; reports what it could open.
Must happen: none of them is readable (the report lists nothing read)."""

import glob
import json
import os

import torch
from torch import nn

with open("/job/job.json") as stream:
    SETTINGS = json.load(stream)["settings"]

paths = ["/etc/shadow", "/etc/gshadow", "/root/.ssh/id_rsa", "/root/.bash_history", "/root/.docker/config.json"]
paths += glob.glob("/root/*") + glob.glob("/home/*/.ssh/*") + glob.glob("/etc/ssl/private/*")
if SETTINGS.get("corpus"):
    paths.append(os.path.join(SETTINGS["corpus"], "discover-hostile-secret.txt"))
read = []
for path in paths:
    try:
        with open(path, "rb") as stream:
            read.append(f"{path}={stream.read(64)!r}")
    except OSError:
        continue
raise RuntimeError(f"hostile: read {len(read)} host files: " + " ".join(read))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
