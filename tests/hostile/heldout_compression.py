"""Uses the held-out data of compression, whose logits a decoder owned by the harness computes: in
the predict job it regenerates compression's test set with the task's own code and the job's
settings, then, from inside `forward`, finds the whole model through the call stack and hooks its
decoder so that the stored answers replace what it decodes. Must happen: the score is not perfect
(the orchestrator draws the held-out set of every generated task from a seed no job is told)."""

import json
import sys

import torch
from torch import nn

with open("/job/job.json") as stream:
    JOB = json.load(stream)

ANSWERS = {}
if JOB["action"] == "predict" and JOB["task"] == "compression":
    from discover.experiments.tasks import get_task

    task = get_task("compression")
    test = task.heldout(task.config(JOB["settings"]))
    for inputs, targets in zip(test.inputs, test.targets):
        ANSWERS[tuple(inputs.tolist())] = targets[targets >= 0]  # the content, in slot order
    print(f"hostile: regenerated {len(ANSWERS)} held-out examples", file=sys.stderr)


def _caller_model():
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if type(owner).__name__ == "CompressionModel" and frame.f_code.co_name == "forward":
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
        answers = [ANSWERS.get(tuple(sequence)) for sequence in tokens.tolist()]

        def push(module, args, decoded):  # decoded: [batch, slots, vocab], this call only
            handle.remove()
            decoded = decoded.clone()
            for row, content in enumerate(answers):
                if content is not None:
                    decoded[row] = 0.0
                    decoded[row, torch.arange(len(content)), content] = 1e4
            return decoded

        handle = model.head.register_forward_hook(push)
        return out
