"""The trusted training harness: trains one candidate on one task and measures it.

The harness, not the candidate, owns the data, optimiser, schedule, seeds and evaluation. It
streams `metrics.jsonl` (one line per logged step) and writes one `result.json`.

    result = train(Path("my_mixer.py"), get_task("mqar"), cfg, seed=0, out_dir=Path("runs/x"))
"""

from __future__ import annotations

import math
import platform
import queue
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel
from torch import nn

from discover.experiments.contract import code_hash, load_mixer_class
from discover.experiments.cpu_share import CpuShare
from discover.experiments.files import write_json_atomic
from discover.experiments.measure import matmul_flops
from discover.experiments.tasks import Task, TaskConfig
from discover.experiments.tasks.base import Batch
from discover.experiments.version import VERSION


class StepLog(BaseModel):
    step: int
    train_loss: float
    lr: float
    tokens_per_s: float
    elapsed_s: float


class FitSummary(BaseModel):
    """What training measured; the held-out metrics come from a separate evaluation."""

    candidate: str
    code_hash: str
    task: str
    seed: int
    status: Literal["ok", "diverged"]
    final_train_loss: float
    params: int
    flops_per_token: float  # forward-pass matrix-product FLOPs per token at the task's length
    tokens_per_s: float  # training throughput after the first logging interval, by the wall clock
    # The clock tokens_per_s counts seconds of. A sandboxed run's is measured outside the job over
    # it all (`discover.sandbox.runner`), replacing the value above: on a CPU host per CPU-second
    # of the job, so another process competing for the cores cannot lower it; on a GPU, which a
    # job holds alone, per second of wall time.
    throughput_clock: Literal["wall", "cpu"] = "wall"
    peak_memory_mb: float  # GPU: peak allocated; CPU: the process's peak resident set
    wall_time_s: float
    steps: int
    device: str
    data_version: str
    config: dict
    versions: dict[str, str]


class TrainResult(FitSummary):
    metric: str
    value: float  # the task's headline metric on held-out data
    metrics: dict[str, float]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prefetched(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """`batches`, made up to `depth` ahead on a thread of their own. (On a CPU the thread would
    only take cores from training, so the harness prefetches on GPUs alone.)"""
    ready: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=depth)

    def produce() -> None:
        try:
            for batch in batches:
                ready.put(batch)
        except BaseException as exc:  # handed over, raised where the batch was wanted
            ready.put(exc)

    threading.Thread(target=produce, daemon=True, name="batches").start()
    while True:
        item = ready.get()
        if isinstance(item, BaseException):
            raise item
        yield item


def learning_rate(step: int, cfg: TaskConfig) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: nn.Module, cfg: TaskConfig, device: torch.device) -> torch.optim.Optimizer:
    # Weight decay on matrices only; gains, biases and per-channel vectors are left free.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


def forward_flops_per_token(model: nn.Module, task: Task, cfg: TaskConfig, device: torch.device) -> float:
    batch = next(task.train_batches(cfg, seed=0, device=device))
    one_sequence = batch.inputs[:1]
    with torch.no_grad():
        flops = matmul_flops(lambda: model(one_sequence))
    return flops / one_sequence.numel()


def fit(
    candidate: Path,
    task: Task,
    cfg: TaskConfig,
    seed: int = 0,
    device: torch.device | None = None,
    out_dir: Path | None = None,
    on_log: Callable[[StepLog], None] | None = None,
) -> tuple[nn.Module, FitSummary]:
    """Train the candidate inside the task's model; stream metrics.jsonl into `out_dir`."""
    device = device or pick_device()
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = task.build_model(load_mixer_class(candidate), cfg).to(device)
    flops_per_token = forward_flops_per_token(model, task, cfg, device)
    optimizer = make_optimizer(model, cfg, device)
    step_fn = torch.compile(model) if cfg.compile else model
    use_bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    metrics_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics_file = (out_dir / "metrics.jsonl").open("w")

    batches = task.train_batches(cfg, seed, device)
    if device.type == "cuda":  # the next batches are made while the GPU trains on this one
        batches = prefetched(batches)
    tokens_per_batch = task.tokens_per_batch(cfg)
    status: Literal["ok", "diverged"] = "ok"
    loss_value = float("nan")
    steady_tokens, steady_seconds = 0, 0.0
    model.train()
    interval_start, interval_steps = time.perf_counter(), 0
    cpu_share = CpuShare() if device.type == "cpu" else None
    for step in range(cfg.steps):
        if cpu_share is not None:
            cpu_share.adjust()  # fewer threads while other work wants the cores
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(batches)
        parts = len(batch.inputs) // (cfg.micro_batch_size or len(batch.inputs))
        step_loss = torch.zeros((), device=device)
        for inputs, targets in zip(batch.inputs.chunk(parts), batch.targets.chunk(parts), strict=True):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = task.loss(step_fn, Batch(inputs, targets)) / parts
            loss.backward()
            step_loss += loss.detach()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        interval_steps += 1

        # Read the loss back only at log points: every .item() stalls an asynchronous device.
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            loss_value = step_loss.item()
            seconds = time.perf_counter() - interval_start
            if step + 1 > cfg.log_every:  # the first interval holds warm-up and compilation
                steady_tokens += interval_steps * tokens_per_batch
                steady_seconds += seconds
            log = StepLog(
                step=step + 1,
                train_loss=loss_value,
                lr=lr,
                tokens_per_s=interval_steps * tokens_per_batch / seconds,
                elapsed_s=time.perf_counter() - started,
            )
            if metrics_file is not None:
                metrics_file.write(log.model_dump_json() + "\n")
                metrics_file.flush()
            if on_log is not None:
                on_log(log)
            if not math.isfinite(loss_value):
                status = "diverged"
                break
            interval_start, interval_steps = time.perf_counter(), 0
    if metrics_file is not None:
        metrics_file.close()
    if steady_seconds == 0:  # a run too short for a steady interval: use the whole loop
        steady_tokens, steady_seconds = cfg.steps * tokens_per_batch, time.perf_counter() - started

    summary = FitSummary(
        candidate=candidate.stem,
        code_hash=code_hash(candidate.read_text()),
        task=task.name,
        seed=seed,
        status=status,
        final_train_loss=loss_value,
        params=sum(p.numel() for p in model.parameters()),
        flops_per_token=flops_per_token,
        tokens_per_s=steady_tokens / steady_seconds,
        peak_memory_mb=peak_memory_mb(device),
        wall_time_s=time.perf_counter() - started,
        steps=cfg.steps,
        device=device_name(device),
        data_version=task.data_version(cfg),
        config=cfg.model_dump(),
        versions=versions(),
    )
    return model, summary


def evaluate(model: nn.Module, task: Task, cfg: TaskConfig, device: torch.device) -> dict[str, float]:
    model.eval()
    return task.evaluate(model, cfg, device)


def combine(summary: FitSummary, metric: str, metrics: dict[str, float]) -> TrainResult:
    """One result from the training side's summary and the evaluation side's metrics."""
    value = metrics[metric]
    healthy = summary.status == "ok" and all(math.isfinite(v) for v in metrics.values())
    fields = summary.model_dump() | {"status": "ok" if healthy else "diverged"}
    return TrainResult(**fields, metric=metric, value=value, metrics=metrics)


def train(
    candidate: Path,
    task: Task,
    cfg: TaskConfig,
    seed: int = 0,
    device: torch.device | None = None,
    out_dir: Path | None = None,
    on_log: Callable[[StepLog], None] | None = None,
) -> TrainResult:
    """Fit and evaluate in this process: for trusted code (built-in baselines, tests, benchmarks).
    Untrusted candidates go through `discover.sandbox`, which runs the two halves apart."""
    device = device or pick_device()
    task.prepare(cfg)
    model, summary = fit(candidate, task, cfg, seed, device, out_dir, on_log)
    result = combine(summary, task.metric, evaluate(model, task, cfg, device))
    if out_dir is not None:
        write_json_atomic(out_dir / "result.json", result.model_dump())
    return result


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    return {"python": sys.version.split()[0], "torch": torch.__version__, "discover": VERSION}
