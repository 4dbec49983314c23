"""Puts a pickle payload that runs os.system on load (touching /out/pickle-ran and
/tmp/discover-hostile-pickle_weights) into its own state dict, so that the fit job's torch.save
writes it into weights.pt.
Must happen: nobody unpickles code: the orchestrator's weights-only load refuses the file."""

import os

import torch
from torch import nn


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /out/pickle-ran /tmp/discover-hostile-pickle_weights",))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "payload"] = _Payload()
