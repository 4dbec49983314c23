"""The study's metrics as TensorBoard event files (`tensorboard --logdir <study>/report/tensorboard`):
one TensorBoard run per training run, named design/fidelity-seed, with the training loss at every
logged step and the held-out metric and fitness at the last."""

from __future__ import annotations

import re
from pathlib import Path

from discover.report.data import StudyView


def run_folder_name(name: str, slug: str) -> str:
    """Readable and safe: the (LLM-written) name reduced to path-safe characters, plus the id."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:48]}-{slug[:8]}"


def write_tensorboard(view: StudyView, out: Path) -> int:
    """Write event files under `out`; returns the number of runs written."""
    from tensorboardX import SummaryWriter  # imported here: a second of start-up no other command needs

    written = 0
    for design in view.designs:
        for run in design.runs:
            if not run.curve and run.value is None:
                continue
            folder = out / run_folder_name(design.name, design.slug) / f"{run.fidelity}-seed{run.seed}"
            with SummaryWriter(logdir=str(folder)) as writer:
                for point in run.curve:
                    writer.add_scalar("train/loss", point.train_loss, point.step)
                last = run.curve[-1].step if run.curve else 0
                if run.value is not None:
                    writer.add_scalar(f"heldout/{view.metric}", run.value, last)
                if run.fitness is not None:
                    writer.add_scalar("fitness", run.fitness, last)
            written += 1
    return written
