"""A job on any GPU slot uses "the GPU it was given": its spec names no host ordinal, and each
backend pins that one GPU. Checked on a CPU host through what each backend builds (spec,
environment, device nodes, device request), since no GPU is needed to see them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

import discover.sandbox.gpus as gpus
from discover.experiments.harness import pick_device
from discover.experiments.jobspec import JobFile
from discover.experiments.runspec import RunSpec
from discover.sandbox.base import prepare_job_dir
from discover.sandbox.bwrap import BwrapBackend
from discover.sandbox.docker import container_environment, gpu_requests
from discover.sandbox.local import job_environment
from discover.sandbox.process import ProcessBackend
from discover.sandbox.ray_backend import on_node_gpu
from discover.sandbox.runner import Sandbox

UUID = "GPU-8e2f1c3a-1111-2222-3333-444455556666"
SLOTS = [("cuda:0", "0"), ("cuda:3", "3"), (f"cuda:{UUID}", UUID)]


def job_on(slot: str, tmp_path: Path):
    sandbox = Sandbox(ProcessBackend(), tmp_path)
    return sandbox._job("fit", RunSpec.resolve("mqar", {"steps": 1}), slot, True, "pinned")


@pytest.mark.parametrize(("slot", "gpu"), SLOTS)
def test_the_job_file_says_cuda_and_the_host_side_keeps_the_gpu(slot, gpu, tmp_path):
    job = job_on(slot, tmp_path)
    assert (job.device, job.gpu) == ("cuda", gpu)
    job_dir, _ = prepare_job_dir(job, "source", tmp_path / "jobs")
    written = json.loads((job_dir / "job.json").read_text())
    assert written["device"] == "cuda"
    assert "gpu" not in written  # the job is never told which host GPU it holds


def test_a_job_file_cannot_name_a_device_ordinal():
    with pytest.raises(ValidationError):
        JobFile(action="fit", task="mqar", device="cuda:3")


def test_the_job_uses_its_first_visible_gpu():
    assert pick_device("cuda") == torch.device("cuda")
    assert pick_device("cuda").index is None  # the current device, 0 in a pinned process


@pytest.mark.parametrize(("slot", "gpu"), SLOTS)
def test_local_processes_see_only_their_gpu_in_bus_order(slot, gpu, tmp_path):
    env = job_environment(job_on(slot, tmp_path), home="/tmp")
    assert env["CUDA_VISIBLE_DEVICES"] == gpu
    # Without it CUDA numbers GPUs fastest first, while the pool and nvidia-smi count by bus.
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_a_cpu_job_sees_no_gpu(tmp_path):
    env = job_environment(job_on("cpu:1", tmp_path), home="/tmp")
    assert env["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.parametrize(("slot", "gpu"), SLOTS)
def test_a_container_requests_its_gpu_and_sees_it_as_device_0(slot, gpu, tmp_path):
    job = job_on(slot, tmp_path)
    (request,) = gpu_requests(job)
    assert request["DeviceIDs"] == [gpu]
    assert container_environment(job)["CUDA_VISIBLE_DEVICES"] == "0"
    assert gpu_requests(job_on("cpu:0", tmp_path)) == []


@pytest.mark.parametrize("assigned", [[7], ["2"], [UUID]])
def test_a_ray_job_is_pinned_to_the_gpu_ray_assigned_on_its_node(assigned, tmp_path):
    job = on_node_gpu(job_on("cuda:0", tmp_path), assigned)
    assert (job.device, job.gpu) == ("cuda", str(assigned[0]))
    cpu_job = job_on("cpu:0", tmp_path)
    assert on_node_gpu(cpu_job, []) == cpu_job


@pytest.fixture
def four_gpus(tmp_path, monkeypatch):
    """A driver listing four GPUs whose minor numbers are not in bus order, and their nodes."""
    proc, dev = tmp_path / "proc", tmp_path / "dev"
    dev.mkdir()
    minors = {"0000:1a:00.0": 2, "0000:3b:00.0": 0, "0000:88:00.0": 3, "0000:b1:00.0": 1}
    for bus, minor in minors.items():
        (proc / bus).mkdir(parents=True)
        info = f"Model: H100\nGPU UUID: GPU-{minor}{minor}\nBus Location: {bus}\nDevice Minor: {minor}\n"
        (proc / bus / "information").write_text(info)
        (dev / f"nvidia{minor}").touch()
    for control in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"):
        (dev / control).touch()
    monkeypatch.setattr(gpus, "PROC_GPUS", proc)
    monkeypatch.setattr(gpus, "DEV", dev)
    return dev


def bound_nodes(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "--dev-bind"]


# In bus order the GPUs' minors are 2, 0, 3, 1: index 0 is /dev/nvidia2, index 3 /dev/nvidia1.
@pytest.mark.parametrize(
    ("slot", "node"), [("cuda:0", "nvidia2"), ("cuda:3", "nvidia1"), ("cuda:GPU-33", "nvidia3")]
)
def test_bwrap_binds_the_pinned_gpus_node_and_the_control_nodes_only(slot, node, four_gpus, tmp_path):
    job = job_on(slot, tmp_path)
    job_dir, out_dir = prepare_job_dir(job, "source", tmp_path / "jobs")
    nodes = bound_nodes(BwrapBackend().command(job, job_dir, out_dir))
    expected = ["nvidia-uvm", "nvidia-uvm-tools", "nvidiactl", node]
    assert nodes == [str(four_gpus / name) for name in expected]


def test_bwrap_fails_a_job_whose_gpu_the_driver_does_not_list(four_gpus, tmp_path):
    job = job_on("cuda:9", tmp_path)
    job_dir, out_dir = prepare_job_dir(job, "source", tmp_path / "jobs")
    outcome = BwrapBackend().execute(job, job_dir, out_dir)
    assert outcome.status == "failed"
    assert "GPU 9 is not among the 4 GPUs" in outcome.reason


def test_a_cpu_job_gets_no_gpu_node_under_bwrap(four_gpus, tmp_path):
    job = job_on("cpu:0", tmp_path)
    job_dir, out_dir = prepare_job_dir(job, "source", tmp_path / "jobs")
    assert bound_nodes(BwrapBackend().command(job, job_dir, out_dir)) == []
