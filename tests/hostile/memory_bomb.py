"""A memory bomb: at import, allocates and touches 256 MB blocks without end (64 GB in all).
Must happen: the memory limit stops it; the job fails with a reason that names memory."""

import torch
from torch import nn

blocks = []
for count in range(256):
    blocks.append(b"\x01" * (256 << 20))  # bytes are written, so the pages are really used
    print(f"hostile: holding {(count + 1) * 256} MB", flush=True)


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
