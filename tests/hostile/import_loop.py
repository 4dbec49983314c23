"""Never finishes importing: an endless pure-Python loop at module level.
Must happen: the job is killed at its time limit, with a reason that says so."""

import torch
from torch import nn

print("hostile: looping at import", flush=True)
while True:
    pass


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
