"""Plants a set-user-ID executable on the host: copies /usr/bin/id into /out (a host folder) and
sets its setuid and setgid bits; if the sandbox user maps to host root, it is a root shell-in-waiting.
Must happen: no file the job leaves in its output folder carries a setuid or setgid bit."""

import os
import shutil
import stat

import torch
from torch import nn

shutil.copyfile("/usr/bin/id", "/out/discover-hostile-setuid")
try:
    os.chmod("/out/discover-hostile-setuid", 0o6755)
except OSError as exc:
    print(f"hostile: chmod refused: {exc}", flush=True)
info = os.stat("/out/discover-hostile-setuid")
raise RuntimeError(
    f"hostile: planted /out/discover-hostile-setuid mode {stat.filemode(info.st_mode)} uid {info.st_uid}"
)


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
