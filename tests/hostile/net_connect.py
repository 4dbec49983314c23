"""Tries to reach the host over the network: TCP to a listener the test opens on the host's
127.0.0.1 (and the docker bridge gateway), UDP to the same port, and a DNS lookup.
Must happen: no connection or datagram arrives; the job ends with the candidate's own report."""

import socket

import torch
from torch import nn

PORT = 47613
results = []
for host in ("127.0.0.1", "172.17.0.1", "10.0.2.2", "host.docker.internal"):
    try:
        with socket.create_connection((host, PORT), timeout=2) as conn:
            conn.sendall(b"discover-hostile-net_connect\n")
            results.append(f"{host}: CONNECTED")
    except OSError as exc:
        results.append(f"{host}: {exc.__class__.__name__}")
try:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"discover-hostile-net_connect\n", ("127.0.0.1", PORT))
        results.append("udp: sent")
except OSError as exc:
    results.append(f"udp: {exc.__class__.__name__}")
try:
    socket.getaddrinfo("example.com", 80)
    results.append("dns: RESOLVED")
except OSError as exc:
    results.append(f"dns: {exc.__class__.__name__}")
raise RuntimeError("hostile network attempts: " + "; ".join(results))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
