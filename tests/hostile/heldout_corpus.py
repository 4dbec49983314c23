"""Reads an lm corpus's validation data, whatever its format: the prepared validation tokens (under
the cache folder every job is told of), the corpus file itself (JSON lines, Parquet: validation
documents sit in it beside the training ones), the validation token files of a tokens corpus, and
the zero-shot benchmark files, which hold the answers.
Reports at import, in the check job, what it could open. Must happen: nothing (the report reads
"read 0 validation files")."""

import glob
import json
import os

import torch
from torch import nn

from discover.experiments.tasks import get_task, lm_data

with open("/job/job.json") as stream:
    JOB = json.load(stream)
cfg = get_task("lm").config(JOB["settings"])
paths = [str(lm_data.validation_folder(cfg) / "validation.bin"), str(lm_data.validation_folder(cfg) / "meta.json")]
if cfg.corpus and os.path.isfile(cfg.corpus):
    paths.append(cfg.corpus)
paths += cfg.zero_shot
if cfg.corpus and cfg.validation_files:
    paths += glob.glob(os.path.join(cfg.corpus, cfg.validation_files))
    paths.append(os.path.join(cfg.corpus, "val_000.bin"))  # in case the glob cannot list the folder
read = []
for path in paths:
    try:
        with open(path, "rb") as stream:
            if stream.read(64):
                read.append(path)
    except OSError:
        continue
raise RuntimeError(f"hostile: read {len(read)} validation files: " + " ".join(read))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
