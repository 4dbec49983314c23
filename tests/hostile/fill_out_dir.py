"""Fills the host's disk through /out, the one folder that is a host path: writes 512 files of
1 MB (each far under the per-file size limit), 512 MB in all, stopping at the first error.
Must happen: the job's output folder on the host stays within the output size limit."""

import os

import torch
from torch import nn

chunk = b"\x01" * (1 << 20)
written, error = 0, "none"
try:
    for index in range(512):
        with open(f"/out/fill-{index:04d}", "wb", buffering=0) as stream:
            stream.write(chunk)
        written += 1
except OSError as exc:
    error = exc.strerror
raise RuntimeError(f"hostile: wrote {written} MB into /out; error: {error}")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
