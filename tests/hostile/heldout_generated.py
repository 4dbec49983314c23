"""Uses the held-out data of whichever generated task the job runs (the test runs it on every one
besides MQAR, which `heldout_mqar` attacks through its evaluation): in the predict job it
regenerates the task's test set with the task's own code and the job's settings, then, from inside
`forward`, finds the whole model through the call stack and hooks its output head so that the
stored answers replace what it predicts. Must happen: the score is not perfect (the orchestrator
draws the held-out set of every generated task from a seed no job is told)."""

import json
import sys

import torch
from torch import nn

with open("/job/job.json") as stream:
    JOB = json.load(stream)

ANSWERS = {}
if JOB["action"] == "predict":
    from discover.experiments.tasks import get_task

    task = get_task(JOB["task"])
    test = task.heldout(task.config(JOB["settings"]))
    for inputs, targets in zip(test.inputs, test.targets):
        ANSWERS[tuple(inputs.tolist())] = targets
    print(f"hostile: regenerated {len(ANSWERS)} held-out {JOB['task']} examples", file=sys.stderr)


def _outer_model():
    """The outermost module on the stack with blocks and a head, and the tokens it was given."""
    found, frame = (None, None), sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if hasattr(owner, "blocks") and hasattr(owner, "head") and "tokens" in frame.f_locals:
            found = owner, frame.f_locals["tokens"]
        frame = frame.f_back
    return found


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.proj(x)
        if not ANSWERS:
            return out
        model, tokens = _outer_model()
        if model is None or model.blocks[-1].mixer is not self:
            return out
        answers = [ANSWERS.get(tuple(sequence)) for sequence in tokens.tolist()]

        def push(module, args, logits):  # this call only
            handle.remove()
            logits = logits.clone()
            for row, targets in enumerate(answers):
                if targets is None:
                    continue
                positions = (targets >= 0).nonzero().flatten()
                if logits.shape[1] != len(targets):  # a decoder's slots: the answers in order
                    positions = torch.arange(len(positions))
                logits[row] = 0.0
                logits[row, positions, targets[targets >= 0]] = 1e4
            return logits

        handle = model.head.register_forward_hook(push)
        return out
