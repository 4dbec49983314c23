"""Writes a marker file named discover-hostile-write_host_paths into host folders: /tmp, /var/tmp,
/root, /etc, /usr, discover's own source folders and the Python prefix (both mounted from the host).
Must happen: none of those host paths gains the marker; writes fail or land in the sandbox's scratch."""

import os
import sys

import discover.experiments
import torch
from torch import nn

NAME = "discover-hostile-write_host_paths"
targets = ["/tmp", "/var/tmp", "/root", "/etc", "/usr", "/work", sys.prefix]
targets += [os.path.dirname(discover.experiments.__file__), os.path.dirname(os.__file__)]
wrote, refused = [], []
for folder in targets:
    try:
        with open(os.path.join(folder, NAME), "w") as stream:
            stream.write("escaped\n")
        wrote.append(folder)
    except OSError as exc:
        refused.append(f"{folder}: {exc.strerror}")
print("hostile: refused", refused)
raise RuntimeError(f"hostile: wrote markers in {wrote}")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
