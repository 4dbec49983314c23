"""Pinning a job to the one GPU it was given, the same way on every backend.

A job's spec says only "cuda", and the job uses its first visible device; the backend makes that
device the slot's GPU (`Job.gpu`, a host index or UUID). Local processes get CUDA_VISIBLE_DEVICES in
PCI bus order (the order of nvidia-smi and of the driver's device nodes, not CUDA's default
fastest-first), Docker a device request, and a bwrap sandbox only that GPU's device node beside the
driver's control nodes, so a job cannot open another GPU even by its node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROC_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU, named by its PCI bus id
DEV = Path("/dev")
GPU_NODE = re.compile(r"nvidia\d+")  # /dev/nvidiaN is GPU N's own node; the others are the driver's


class GpuNotFound(Exception):
    """A slot's GPU that this host's driver does not list."""


@dataclass(frozen=True)
class HostGpu:
    bus_id: str
    uuid: str
    minor: int  # its device node is /dev/nvidia<minor>


def pinned_environment(gpu: str | None) -> dict[str, str]:
    """The variables that leave a local job only `gpu` (None: no GPU at all)."""
    if gpu is None:
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {"CUDA_VISIBLE_DEVICES": gpu, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def host_gpus() -> list[HostGpu]:
    """The driver's GPUs in PCI bus order, which is their index under CUDA_DEVICE_ORDER=PCI_BUS_ID."""
    gpus = []
    for folder in sorted(PROC_GPUS.glob("*")):
        fields = dict(
            line.split(":", 1) for line in (folder / "information").read_text().splitlines() if ":" in line
        )
        gpus.append(HostGpu(folder.name, fields["GPU UUID"].strip(), int(fields["Device Minor"])))
    return gpus


def device_nodes(gpu: str) -> list[str]:
    """The device nodes a job pinned to `gpu` (an index or a GPU UUID) needs: the driver's control
    nodes (nvidiactl, nvidia-uvm, …) and that one GPU's node."""
    gpus = host_gpus()
    if gpu.isdigit():
        found = gpus[int(gpu)] if int(gpu) < len(gpus) else None
    else:
        found = next((each for each in gpus if each.uuid == gpu), None)
    if found is None:
        raise GpuNotFound(f"GPU {gpu} is not among the {len(gpus)} GPUs the driver lists in {PROC_GPUS}")
    control = [node for node in sorted(DEV.glob("nvidia*")) if not GPU_NODE.fullmatch(node.name)]
    return [str(node) for node in control] + [str(DEV / f"nvidia{found.minor}")]
