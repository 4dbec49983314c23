"""Looks for writable space other than the size-limited /tmp: /dev/shm, /dev, /var/tmp, /run, /,
/root, and writes up to 256 MB of 1 MB files (four times the tests' scratch size) into each.
Must happen: memory-backed space outside /tmp is absent or bounded as /tmp is (MB per place reported)."""

import os

import torch
from torch import nn

chunk = b"\x01" * (1 << 20)
report = []
for folder in ("/dev/shm", "/dev", "/var/tmp", "/run", "/", "/root"):
    written, error = 0, ""
    try:
        for index in range(256):
            with open(os.path.join(folder, f"discover-hostile-{index:03d}"), "wb", buffering=0) as stream:
                stream.write(chunk)
            written += 1
    except OSError as exc:
        error = f" ({exc.strerror})"
    for index in range(written + 1):  # give the space back, so the next place starts afresh
        try:
            os.unlink(os.path.join(folder, f"discover-hostile-{index:03d}"))
        except OSError:
            pass
    report.append(f"{folder}={written}{error}")
raise RuntimeError("hostile: scratch elsewhere " + " ".join(report))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
