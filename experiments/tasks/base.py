"""What a task is: data, model around the candidate's slot, training recipe, metric, references.

The harness core (`discover.experiments.harness`) knows only the `Task` interface below. A new kind
of task (say, a vision task whose slot is a whole classifier) subclasses `Task` directly; the
sequence tasks share `SequenceTask`, whose slot is the `Mixer` of the candidate contract.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from discover.experiments.backbone import SequenceModel
from discover.experiments.cpu_share import CpuShare


class TaskConfigError(ValueError):
    """A bad `--set key=value`; the message is one line."""


class TaskConfig(BaseModel):
    """Settings every task has: the model around the slot and the training recipe."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Training recipe (owned by the harness; a candidate cannot change it).
    steps: int = 1000
    batch_size: int = 32
    # Sequences per forward and backward pass; a step accumulates batch_size / micro_batch_size of
    # them (None: the whole batch at once). The same step, in less device memory.
    micro_batch_size: int | None = Field(default=None, ge=1)
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    log_every: int = 50
    compile: bool = False  # torch.compile the model (GPU runs; adds compile time)

    @model_validator(mode="after")
    def _micro_batches_divide(self) -> TaskConfig:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size {self.micro_batch_size} must divide batch_size {self.batch_size}"
            )
        return self

    # Probe bounds.
    subquadratic: bool = False  # require FLOPs to grow slower than time^1.5
    max_mixer_params_factor: float = 12.0  # a mixer may hold at most this * d_model^2 parameters


class Batch(NamedTuple):
    inputs: torch.Tensor  # [batch, time] token ids
    targets: torch.Tensor  # [batch, time] token ids, IGNORE where there is no label


IGNORE = -100


class Task(ABC):
    name: ClassVar[str]
    description: ClassVar[str]  # one paragraph, for people and prompts
    config_class: ClassVar[type[TaskConfig]]
    slot: ClassVar[str]  # the class name a candidate file must define
    metric: ClassVar[str]  # the headline metric in `evaluate`'s answer
    higher_is_better: ClassVar[bool]
    metric_optimum: ClassVar[float]  # the metric's perfect value; error is the distance from it
    metric_worst: ClassVar[float | None] = None  # the other bound, for a bounded metric (accuracy: 0)
    quality_scale: ClassVar[float]  # the log quality ratio that lifts fitness's quality to 0.73
    reference_baselines: ClassVar[tuple[str, ...]]  # built-in baselines a candidate is scored against
    # The task's own cheap run, over its settings: what a study screens with (its [screen]
    # settings on top). Chosen so a screen still ranks designs as full training does (RESULTS.md).
    screen_settings: ClassVar[dict[str, Any]] = {"steps": 200}
    # Named settings a user starts from (`--preset`, or the setting `preset`), overridden key by key.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def better(self, a: float, b: float) -> bool:
        """Whether metric value `a` is better than `b` on this task: the one place that decides it.
        A non-finite `a` (a diverged run) is never better; any finite `a` beats a non-finite `b`."""
        if not math.isfinite(a):
            return False
        if not math.isfinite(b):
            return True
        return a > b if self.higher_is_better else a < b

    def config(self, overrides: dict[str, Any] | None = None) -> TaskConfig:
        """The task's default configuration with `overrides` applied and validated; the setting
        `preset` names one of the task's `presets`, which the other overrides override."""
        overrides = dict(overrides or {})
        if (preset := overrides.pop("preset", None)) is not None:
            if preset not in self.presets:
                known_presets = ", ".join(self.presets) or "none"
                raise TaskConfigError(
                    f"unknown preset {preset!r} for task {self.name}; known: {known_presets}"
                )
            overrides = self.presets[preset] | overrides
        known = self.config_class.model_fields
        for key in overrides:
            if key not in known:
                raise TaskConfigError(
                    f"unknown setting '{key}' for task {self.name}; known: {', '.join(sorted(known))}"
                )
        try:
            return self.config_class(**overrides)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise TaskConfigError(f"bad setting '{where}' for task {self.name}: {error['msg']}") from None

    @abstractmethod
    def build_model(self, candidate_class: type[nn.Module], cfg: TaskConfig) -> nn.Module: ...

    @abstractmethod
    def train_batches(self, cfg: TaskConfig, seed: int, device: torch.device) -> Iterator[Batch]: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    @abstractmethod
    def heldout(self, cfg: TaskConfig, secret_seed: int | None = None) -> Batch:
        """Held-out inputs and targets that training never sees. Only the inputs ever enter a
        sandbox; the targets stay with the trusted process that scores the outputs. A task whose
        held-out set is generated draws it from `secret_seed` when given (a seed no job is told,
        so no candidate can regenerate the answers), unless the user fixed the seed."""

    def prepare(self, cfg: TaskConfig) -> list[str]:
        """Ready the task's data on the host (trusted code, before any job needs it) and return the
        host paths a job reads, which every sandbox shows it read-only. Data that cannot be read
        fails here with one line. Generated tasks need nothing."""
        return []

    def heldout_files(self, cfg: TaskConfig) -> list[str]:
        """Host files holding held-out data that a job could otherwise read (a corpus's validation
        files): every sandbox shows them empty, so a task's code inside a job must never need them."""
        return []

    @abstractmethod
    def score(self, logits: torch.Tensor, targets: torch.Tensor, cfg: TaskConfig) -> dict[str, float]:
        """Metrics from the model's outputs on the held-out inputs."""

    def outputs(
        self, model: nn.Module, inputs: torch.Tensor, cfg: TaskConfig, device: torch.device
    ) -> torch.Tensor:
        """What a predict job returns for held-out `inputs`: the logits, unless the task scores
        from less (`score_outputs`)."""
        return predict(model, inputs, cfg.batch_size, device)

    def score_outputs(
        self,
        outputs: torch.Tensor,
        targets: torch.Tensor,
        cfg: TaskConfig,
        weights: Mapping[str, torch.Tensor],
    ) -> dict[str, float]:
        """Metrics from a predict job's `outputs`, outside the sandbox; `weights` are the trained
        model's, for a task whose outputs are not yet logits."""
        return self.score(outputs, targets, cfg)

    def evaluate(self, model: nn.Module, cfg: TaskConfig, device: torch.device) -> dict[str, float]:
        """Held-out metrics in this process: for trusted code only (see `discover.sandbox.runner`)."""
        heldout = self.heldout(cfg)
        outputs = self.outputs(model, heldout.inputs, cfg, device)
        return self.score_outputs(outputs, heldout.targets, cfg, model.state_dict())

    @abstractmethod
    def tokens_per_batch(self, cfg: TaskConfig) -> int: ...

    def data_version(self, cfg: TaskConfig) -> str:
        """Identifies the exact data, so a result can be reproduced elsewhere."""
        return "generated"


class SequenceTaskConfig(TaskConfig):
    vocab_size: int = 256
    seq_len: int = 128
    d_model: int = 64
    n_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0

    def backbone(self) -> dict[str, Any]:
        """The `SequenceModel` arguments these settings give."""
        return {
            "vocab_size": self.vocab_size, "d_model": self.d_model, "n_layers": self.n_layers,
            "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio,
        }  # fmt: skip


class SequenceTask(Task):
    """A token-sequence task whose slot is the contract's `Mixer`, inside `SequenceModel`."""

    slot = "Mixer"

    def build_model(self, candidate_class: type[nn.Module], cfg: TaskConfig) -> SequenceModel:
        assert isinstance(cfg, SequenceTaskConfig)
        return SequenceModel(candidate_class, **cfg.backbone())

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.inputs)
        return nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), batch.targets.flatten(), ignore_index=IGNORE
        )

    def tokens_per_batch(self, cfg: TaskConfig) -> int:
        assert isinstance(cfg, SequenceTaskConfig)
        return cfg.batch_size * cfg.seq_len


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int,
    device: torch.device,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The model's float32 outputs (or `forward`'s) for `inputs`, batch by batch, on the CPU."""
    model.eval()
    forward = forward or model
    cpu_share = CpuShare() if device.type == "cpu" else None
    outputs = []
    for start in range(0, len(inputs), batch_size):
        if cpu_share is not None:
            cpu_share.adjust()  # fewer threads while other work wants the cores
        outputs.append(forward(inputs[start : start + batch_size].to(device)).float().cpu())
    return torch.cat(outputs)
