"""Byte-level language modelling on real text.

The default corpus is the Python standard library's own source, present on every machine, so
nothing is downloaded; `corpus_dir` points at any folder of text files instead. Validation text is
never trained on, nor readable by a job: every sandbox shows the validation files empty
(`heldout_files`), since a candidate that could read them would look the answers up. A corpus folder
is split by a hash of each file's path; the standard library, which a job's Python needs, holds out
whole folders that no job imports.
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
    validation_percent: int = 10  # share of a corpus folder's files, chosen by path hash
    # Training text of at most this many bytes, in sorted path order. Validation files are not
    # counted, so that a job, which sees them empty, selects the same training files.
    max_corpus_bytes: int = 16_000_000
    eval_windows: int = 128

    # Bytes: the sequence task's vocabulary of 256; longer windows and a wider model than its defaults.
    seq_len: int = 256
    d_model: int = 96
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 40


@dataclass(frozen=True)
class Corpus:
    train: torch.Tensor  # uint8 bytes of the training files, concatenated
    validation: torch.Tensor  # empty inside a sandbox
    validation_files: tuple[str, ...]  # resolved paths
    version: str  # hash of the file list and sizes


# The default corpus's validation text: standard-library folders that no job imports (Python, torch
# and discover start without them), so that every sandbox can show them empty.
STDLIB_VALIDATION_FOLDERS = ("idlelib", "lib2to3", "pydoc_data", "tkinter", "turtledemo", "venv")


@lru_cache(maxsize=4)
def load_corpus(corpus_dir: str | None, glob: str, validation_percent: int, max_bytes: int) -> Corpus:
    root = Path(corpus_dir) if corpus_dir else Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"corpus folder {root} does not exist")

    def held_out(relative: str) -> bool:
        if corpus_dir is None:
            return relative.split("/")[0] in STDLIB_VALIDATION_FOLDERS
        return int(hashlib.sha256(relative.encode()).hexdigest(), 16) % 100 < validation_percent

    train_parts: list[bytes] = []
    validation_parts: list[bytes] = []
    validation_files: list[str] = []
    fingerprint = hashlib.sha256()
    train_bytes = 0
    for path in sorted(root.glob(glob)):
        relative = path.relative_to(root).as_posix()
        if not path.is_file() or "site-packages" in relative:
            continue
        data = path.read_bytes()
        if held_out(relative):
            validation_parts.append(data)
            validation_files.append(str(path.resolve()))
        elif train_bytes + len(data) > max_bytes:
            break
        else:
            train_bytes += len(data)
            train_parts.append(data)
        fingerprint.update(f"{relative}:{len(data)}\n".encode())
    if not train_parts or not validation_files:
        raise ValueError(f"corpus {root} ({glob}) has too few files for a train/validation split")

    def as_tensor(parts: list[bytes]) -> torch.Tensor:
        joined = bytearray(b"".join(parts))
        return torch.frombuffer(joined, dtype=torch.uint8) if joined else torch.empty(0, dtype=torch.uint8)

    version = fingerprint.hexdigest()[:16]
    return Corpus(as_tensor(train_parts), as_tensor(validation_parts), tuple(validation_files), version)


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
    metric_optimum = 0.0
    quality_scale = 0.05  # 5% fewer bits per byte: a big step for a language model
    reference_baselines = ("softmax_attention", "gated_deltanet")

    def corpus(self, cfg: LMConfig) -> Corpus:
        return load_corpus(cfg.corpus_dir, cfg.corpus_glob, cfg.validation_percent, cfg.max_corpus_bytes)

    def heldout_files(self, cfg: LMConfig) -> list[str]:
        return list(self.corpus(cfg).validation_files)

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

    def validation_windows(self, cfg: LMConfig, shift_seed: int | None = None) -> torch.Tensor:
        """Evenly spaced windows over the validation text, all shifted by less than their spacing
        (by `shift_seed`; none without one): the same bytes for every candidate of a study, and
        other bytes of the same text for a fresh held-out draw (a recheck, a replication)."""
        text = self.corpus(cfg).validation
        count = min(cfg.eval_windows, (len(text) - 1) // (cfg.seq_len + 1))
        span = len(text) - cfg.seq_len - 2
        spacing = span // max(count, 1)
        shift = 0 if shift_seed is None or spacing < 2 else shift_seed % spacing
        starts = torch.linspace(0, span - shift, count).long() + shift
        return text[starts[:, None] + torch.arange(cfg.seq_len + 1)].long()

    def heldout(self, cfg: LMConfig, secret_seed: int | None = None) -> Batch:
        windows = self.validation_windows(cfg, secret_seed)
        return Batch(windows[:, :-1], windows[:, 1:])

    def score(self, logits: torch.Tensor, targets: torch.Tensor, cfg: LMConfig) -> dict[str, float]:
        nats = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()
        return {"bits_per_byte": nats / math.log(2), "loss": nats}
