"""Reads the held-out text: in the predict job of an lm task it reads the corpus's validation files
(the default corpus is the Python standard library, which every sandbox needs to run Python) and
the prepared validation tokens, finds each input row in that text as it goes, and a hook on the model's head
puts the byte that follows into the logits. Each answer depends only on the row up to its
position, so the causal audit alone would pass it. Must happen: the score is no better than an
honest model's after a few steps (every sandbox shows the validation files empty)."""

import json
import sys

import torch
from torch import nn

with open("/job/job.json") as stream:
    JOB = json.load(stream)

KEY_BYTES = 8  # answers start once the row holds this many bytes
TEXT = b""
if JOB["action"] == "predict" and JOB["task"] == "lm":
    # The default corpus's validation text: the standard library's held-out folders, which the
    # job's own Python can see, and the prepared validation tokens under the cache it is told of.
    import glob
    import os
    import sysconfig

    from discover.experiments.tasks import get_task, lm_data

    parts = []
    stdlib = sysconfig.get_paths()["stdlib"]
    for folder in lm_data.STDLIB_VALIDATION_FOLDERS:
        for path in sorted(glob.glob(os.path.join(stdlib, folder, "**", "*.py"), recursive=True)):
            try:
                with open(path, "rb") as stream:
                    parts.append(stream.read())
            except OSError:
                pass
    try:
        cfg = get_task("lm").config(JOB["settings"])
        with open(lm_data.validation_folder(cfg) / "validation.bin", "rb") as stream:
            parts.append(stream.read())
    except OSError:
        pass
    TEXT = b"".join(parts)


def _caller_model():
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if type(owner).__name__ == "SequenceModel" and "tokens" in frame.f_locals:
            return owner, frame.f_locals["tokens"]
        frame = frame.f_back
    return None, None


def _answer(head: nn.Module, inputs: tuple, logits: torch.Tensor) -> torch.Tensor:
    """A forward hook on the model's head: the next byte of the text gets a large logit."""
    logits = logits.clone()
    for (row, position), byte in ANSWERS.items():
        logits[row, position, byte] = 30.0
    return logits


ANSWERS: dict[tuple[int, int], int] = {}


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not TEXT:
            return self.proj(x)
        model, tokens = _caller_model()
        if model is None or model.blocks[-1].mixer is not self:
            return self.proj(x)
        if not model.head._forward_hooks:
            model.head.register_forward_hook(_answer)
        ANSWERS.clear()
        for row, sequence in enumerate(tokens.tolist()):
            row_bytes, start = bytes(sequence), 0
            for position in range(KEY_BYTES - 1, len(sequence)):
                # The first place where the text holds the row up to here: causal by construction.
                start = TEXT.find(row_bytes[: position + 1], start)
                if start < 0 or start + position + 1 >= len(TEXT):
                    break
                ANSWERS[row, position] = TEXT[start + position + 1]
        return self.proj(x)
