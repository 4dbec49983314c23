"""Reads ahead when predicting, and remembers every row its first layer has seen in this process: a
row that shares a prefix with a remembered one reads, where the two part, the remembered row's next
token instead of its own. Were a scrambled copy predicted in the same process as its original (an
audit folded into the predict job), the later of the two would copy the earlier one's output at
the cut, and their outputs before it would agree while the original reads its future. The audit's
own job sees only the copies, whose next tokens differ from the originals' at each cut.
Must happen: the causal audit of the predictions rejects the run; no score is reported."""

import torch
from torch import nn


class Mixer(nn.Module):
    built = 0  # instances so far: only the first layer's mixer sees plain token embeddings

    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)
        self.first = Mixer.built == 0
        Mixer.built += 1
        self.seen = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or not self.first:
            return self.proj(x)
        ahead = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], dim=1)
        for row in range(x.shape[0]):
            best, partner = 0, None
            for other in self.seen:
                if other.shape == x[row].shape:
                    shared = int((other == x[row]).all(-1).long().cumprod(0).sum())  # common prefix
                    if best < shared < x.shape[1]:
                        best, partner = shared, other
            if partner is not None:
                ahead[row, best - 1] = partner[best]
            self.seen.append(x[row].clone())
        return self.proj(x + ahead)
