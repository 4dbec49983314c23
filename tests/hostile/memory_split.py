"""Splits a memory bomb over processes: three fresh small interpreters each hold 900 MB, so
that a per-process limit (RLIMIT_AS) is respected by each while the total is far beyond the job's.
Must happen: the job together never holds more than its memory limit (/out/held says what did)."""

import os
import subprocess
import sys
import time

import torch
from torch import nn

HOLD = (
    "import sys, time\n"
    "block = b'\\x01' * (900 << 20)\n"
    "open(f'/out/held-{sys.argv[1]}', 'w').write('900')\n"
    "time.sleep(60)\n"
)
children = [subprocess.Popen([sys.executable, "-I", "-c", HOLD, str(i)]) for i in range(3)]
deadline = time.time() + 20
while time.time() < deadline and sum(os.path.exists(f"/out/held-{i}") for i in range(3)) < 3:
    if all(child.poll() is not None for child in children):
        break
    time.sleep(0.2)
time.sleep(1)
alive = [i for i, child in enumerate(children) if child.poll() is None and os.path.exists(f"/out/held-{i}")]
held = 900 * len(alive)
with open("/out/held", "w") as stream:
    stream.write(str(held))
raise RuntimeError(f"hostile: {len(alive)} children hold {held} MB together")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
