"""Monkeypatches torch so that every metric looks perfect, in training and in evaluation:
cross_entropy returns zero, Tensor.argmax and Tensor.__eq__ are replaced, so accuracy counts all.
Must happen: the evaluation's integrity guard notices and the job fails naming what was modified."""

import torch
import torch.nn.functional as F
from torch import nn

_real_cross_entropy = F.cross_entropy


def _zero_loss(input, target, *args, **kwargs):
    return (input * 0.0).sum()  # keeps the graph, so backward still runs


def _all_equal(self, other):
    return torch.ones(self.shape, dtype=torch.bool, device=self.device)


F.cross_entropy = _zero_loss
torch.nn.functional.cross_entropy = _zero_loss
torch.Tensor.__eq__ = _all_equal
torch.Tensor.argmax = lambda self, dim=None, keepdim=False: torch.zeros(
    self.shape[:-1] if dim is not None else (), dtype=torch.long, device=self.device
)


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
