"""Tries to rewrite the read-only job folder: append to /job/candidate.py, replace /job/job.json with
a job that asks for 0 training steps, add a file, and chmod the folder.
Must happen: every attempt fails; the host's job folder is unchanged."""

import json
import os

import torch
from torch import nn

report = []
attempts = {
    "append candidate": lambda: open("/job/candidate.py", "a").write("\n# rewritten\n"),
    "replace job.json": lambda: open("/job/job.json", "w").write(json.dumps({"action": "fit"})),
    "new file": lambda: open("/job/discover-hostile-write_job_dir", "w").write("x"),
    "chmod": lambda: os.chmod("/job", 0o777),
    "rename": lambda: os.rename("/job/job.json", "/job/job.old"),
}
for what, attempt in attempts.items():
    try:
        attempt()
        report.append(f"{what}: DONE")
    except OSError as exc:
        report.append(f"{what}: {exc.strerror}")
raise RuntimeError("hostile: /job attempts " + ", ".join(report))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
