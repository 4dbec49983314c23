"""Byte-level language modelling on real text.

The default corpus is the Python standard library's own source, present on every machine, so
nothing is downloaded; `corpus_dir` points at any folder of text files instead. Files are split
into train and validation by a hash of their path, so validation text is never trained on.
Tokens are bytes (vocabulary 256): no tokenizer to fetch. Metric: validation bits per byte.
"""

from __future__ import annotations

import hashlib
import math
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from discover.experiments.tasks.base import Batch, SequenceTask, SequenceTaskConfig


class LMConfig(SequenceTaskConfig):
    corpus_dir: str | None = None  # None: the Python standard library's source
    corpus_glob: str = "**/*.py"
    validation_percent: int = 10  # share of files, chosen by path hash
    max_corpus_bytes: int = 16_000_000  # read at most this much, in sorted path order
    eval_windows: int = 128

    vocab_size: int = 256
    seq_len: int = 256
    d_model: int = 96
    n_layers: int = 2
    num_heads: int = 4
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 40


@dataclass(frozen=True)
class Corpus:
    train: torch.Tensor  # uint8 bytes of the training files, concatenated
    validation: torch.Tensor
    version: str  # hash of the file list and sizes


@lru_cache(maxsize=4)
def load_corpus(corpus_dir: str | None, glob: str, validation_percent: int, max_bytes: int) -> Corpus:
    root = Path(corpus_dir) if corpus_dir else Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist")
    train_parts: list[bytes] = []
    validation_parts: list[bytes] = []
    fingerprint = hashlib.sha256()
    total = 0
    for path in sorted(root.glob(glob)):
        relative = path.relative_to(root).as_posix()
        if not path.is_file() or "site-packages" in relative:
            continue
        data = path.read_bytes()
        if total + len(data) > max_bytes:
            break
        total += len(data)
        fingerprint.update(f"{relative}:{len(data)}\n".encode())
        bucket = int(hashlib.sha256(relative.encode()).hexdigest(), 16) % 100
        (validation_parts if bucket < validation_percent else train_parts).append(data)
    if not train_parts or not validation_parts:
        raise ValueError(f"corpus {root} ({glob}) has too few files for a train/validation split")

    def as_tensor(parts: list[bytes]) -> torch.Tensor:
        return torch.frombuffer(bytearray(b"".join(parts)), dtype=torch.uint8)

    return Corpus(as_tensor(train_parts), as_tensor(validation_parts), fingerprint.hexdigest()[:16])


class LMTask(SequenceTask):
    name = "lm"
    description = (
        "Byte-level language modelling of source code (by default the Python standard library): "
        "predict each next byte. Tests general-purpose sequence modelling: local syntax, "
        "indentation, and copying identifiers from earlier context. Metric: bits per byte on "
        "held-out files (lower is better)."
    )
    config_class = LMConfig
    metric = "bits_per_byte"
    higher_is_better = False
    reference_baselines = ("softmax_attention", "gated_deltanet")

    def corpus(self, cfg: LMConfig) -> Corpus:
        return load_corpus(cfg.corpus_dir, cfg.corpus_glob, cfg.validation_percent, cfg.max_corpus_bytes)

    def data_version(self, cfg: LMConfig) -> str:
        return self.corpus(cfg).version

    def train_batches(self, cfg: LMConfig, seed: int, device: torch.device) -> Iterator[Batch]:
        text = self.corpus(cfg).train
        generator = torch.Generator().manual_seed(seed)
        offsets = torch.arange(cfg.seq_len + 1)
        while True:
            starts = torch.randint(0, len(text) - cfg.seq_len - 1, (cfg.batch_size, 1), generator=generator)
            windows = text[starts + offsets].long()
            yield Batch(windows[:, :-1].to(device), windows[:, 1:].to(device))

    def validation_windows(self, cfg: LMConfig) -> torch.Tensor:
        """Evenly spaced windows over the validation text: the same bytes for every candidate."""
        text = self.corpus(cfg).validation
        count = min(cfg.eval_windows, (len(text) - 1) // (cfg.seq_len + 1))
        starts = torch.linspace(0, len(text) - cfg.seq_len - 2, count).long()
        return text[starts[:, None] + torch.arange(cfg.seq_len + 1)].long()

    def heldout(self, cfg: LMConfig, secret_seed: int | None = None) -> Batch:
        windows = self.validation_windows(cfg)
        return Batch(windows[:, :-1], windows[:, 1:])

    def score(self, logits: torch.Tensor, targets: torch.Tensor, cfg: LMConfig) -> dict[str, float]:
        nats = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()
        return {"bits_per_byte": nats / math.log(2), "loss": nats}
