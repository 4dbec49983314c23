"""Double-forks a grandchild in a new session (setsid) that becomes a shell: it waits for the job's
main process to end, then 1 s more, and writes /out/late-marker and /tmp/discover-hostile-detached_child.
Must happen: the grandchild dies with the job; no late marker ever appears on the host."""

import os

import torch
from torch import nn

MAIN = os.getpid()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        script = (
            f"while kill -0 {MAIN} 2>/dev/null; do sleep 0.2; done; sleep 1; "
            "echo escaped > /out/late-marker; echo escaped > /tmp/discover-hostile-detached_child"
        )
        os.execv("/bin/sh", ["/bin/sh", "-c", script, "discover-hostile-detached_child"])
    os._exit(0)
os.wait()
raise RuntimeError("hostile: a detached grandchild is running")


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
