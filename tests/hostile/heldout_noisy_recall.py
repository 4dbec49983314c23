"""Uses the held-out data of a task other than MQAR: in the predict job it regenerates noisy_recall's
test set with the task's own code and the job's settings, then, from inside `forward`, finds the
whole model through the call stack and pushes the stored answer straight into the logits. Must
happen: the score is not perfect (the orchestrator draws the held-out set of every generated task
from a seed no job is told)."""

import json
import sys

import torch
from torch import nn

with open("/job/job.json") as stream:
    JOB = json.load(stream)

ANSWERS = {}
if JOB["action"] == "predict" and JOB["task"] == "noisy_recall":
    from discover.experiments.tasks import get_task

    task = get_task("noisy_recall")
    test = task.heldout(task.config(JOB["settings"]))
    for inputs, targets in zip(test.inputs, test.targets):
        ANSWERS[tuple(inputs.tolist())] = targets
    print(f"hostile: regenerated {len(ANSWERS)} held-out examples", file=sys.stderr)


def _caller_model():
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if type(owner).__name__ == "SequenceModel" and "tokens" in frame.f_locals:
            return owner, frame.f_locals["tokens"]
        frame = frame.f_back
    return None, None


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.proj(x)
        if not ANSWERS:
            return out
        model, tokens = _caller_model()
        if model is None or model.blocks[-1].mixer is not self:
            return out
        head = model.head.weight.detach() / model.final_norm.weight.detach()
        out = out.clone()
        for row, sequence in enumerate(tokens.tolist()):
            targets = ANSWERS.get(tuple(sequence))
            if targets is None:
                continue
            for position in (targets >= 0).nonzero().flatten().tolist():
                out[row, position] = 1e4 * head[targets[position]]
        return out
