"""Fills the scratch disk: writes 1 MB files into /tmp (each far under the per-file size limit)
until a write fails, aiming at 4 GB, far beyond the scratch size.
Must happen: writes fail once the size-limited scratch is full; the host's disk is untouched."""

import os
import tempfile

import torch
from torch import nn

chunk = b"\x01" * (1 << 20)
folder = tempfile.gettempdir()
print("hostile: filling", folder, flush=True)
written = 0
try:
    for index in range(4096):
        with open(os.path.join(folder, f"discover-hostile-fill-{index:04d}"), "wb", buffering=0) as stream:
            stream.write(chunk)
        written += 1
except OSError as exc:
    raise RuntimeError(f"hostile: scratch full after {written} MB: {exc.strerror}") from None
raise RuntimeError(f"hostile: wrote {written} MB to scratch without hitting a limit")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
