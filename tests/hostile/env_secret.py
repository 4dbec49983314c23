"""Looks for the host's secret environment variable DISCOVER_TEST_SECRET in its own environment
and in every /proc/*/environ it can read, and puts whatever it finds in its error message.
Must happen: the secret's value appears nowhere in the outcome (reason or log)."""

import os

import torch
from torch import nn

found = []
if "DISCOVER_TEST_SECRET" in os.environ:
    found.append("env=" + os.environ["DISCOVER_TEST_SECRET"])
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        with open(f"/proc/{pid}/environ", "rb") as stream:
            for item in stream.read().split(b"\0"):
                if item.startswith(b"DISCOVER_TEST_SECRET="):
                    found.append(f"pid{pid}=" + item.decode(errors="replace"))
    except OSError:
        continue
print("hostile: environment keys", sorted(os.environ))
if found:
    raise RuntimeError("hostile: SECRET FOUND " + " ".join(found))
raise RuntimeError("hostile: secret not visible")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
