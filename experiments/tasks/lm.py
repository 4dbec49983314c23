"""Language modelling on real text: the user's corpus and tokenizer, or bytes of the Python
standard library's source (present on every machine, so nothing is downloaded).

The data (`lm_data`) is read and tokenized once on the host; a job reads only the training tokens,
by memory map. Validation tokens never enter a sandbox, and the standard library's held-out folders,
which a job's Python can see, are shown to every job empty (`heldout_files`). Metric: validation
bits per byte (comparable across tokenizers), with the loss in nats per token beside it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator
from torch import nn

from discover.experiments.files import data_cache
from discover.experiments.tasks import lm_data
from discover.experiments.tasks.base import IGNORE, Batch, SequenceTask, SequenceTaskConfig, predict
from discover.experiments.tasks.lm_tokenizer import Tokenizer
from discover.experiments.tasks.lm_zero_shot import ChoiceRows, choice_rows, load_questions, score_choices


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


class LMConfig(SequenceTaskConfig):
    # The corpus (`lm_data` describes the formats). None: the Python standard library's source.
    corpus: str | None = None  # a folder, or a .jsonl or .parquet file
    corpus_format: Literal["auto", "text", "jsonl", "parquet", "tokens"] = "auto"
    corpus_glob: str | None = None  # a folder's files; None: *.py for text, all .jsonl or .parquet files
    text_field: str = "text"  # jsonl and parquet: the field or column holding each document
    train_files: str | None = None  # tokens: globs in the corpus folder naming the training and
    validation_files: str | None = None  # the validation token files
    token_dtype: Literal["uint16", "uint32"] = "uint16"  # tokens: the files' integer type
    # "bytes" (vocabulary 256), "bpe" (a byte-level BPE of vocab_size tokens trained on the corpus's
    # training text), or the path of a tokenizers JSON file (a tokens corpus: the one that made it).
    tokenizer: str = "bytes"
    validation_percent: int = 10  # share of the documents held out, chosen by a hash of each
    max_corpus_bytes: int = 16_000_000  # training text read from a text, jsonl or parquet corpus
    eval_windows: int = 128
    # Zero-shot multiple-choice benchmarks (`lm_zero_shot`): JSON-lines files on the host, scored
    # beside the validation loss; a job sees their contexts and choices, never their answers.
    zero_shot: list[str] = Field(default_factory=list)

    # Bytes: the sequence task's vocabulary of 256; longer windows and a wider model than its defaults.
    seq_len: int = 256
    d_model: int = 96
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 40

    @field_validator("zero_shot", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [part for part in value.split(",") if part] if isinstance(value, str) else value  # --set a,b

    @field_validator("corpus", "zero_shot", "tokenizer")
    @classmethod
    def _absolute(cls, value: str | list[str] | None, info: ValidationInfo) -> str | list[str] | None:
        """Paths made absolute where they are given (jobs run elsewhere), without resolving links:
        a job that cannot see the file computes the same path (`lm_data.data_key`)."""
        if value is None or (info.field_name == "tokenizer" and value in ("bytes", "bpe")):
            return value
        return [_absolute(path) for path in value] if isinstance(value, list) else _absolute(value)

    @model_validator(mode="after")
    def _tokenizer_fits(self) -> LMConfig:
        if self.tokenizer == "bytes" and self.vocab_size < 256:
            raise ValueError("the bytes tokenizer needs vocab_size of at least 256")
        if self.tokenizer == "bpe" and self.vocab_size <= 257:
            raise ValueError("a bpe tokenizer needs vocab_size above 257 (the bytes and a separator)")
        if self.tokenizer == "bpe" and (self.corpus_format == "tokens" or self.train_files is not None):
            raise ValueError("a tokens corpus is tokenized already: set tokenizer to the file that made it")
        return self


def token_log_likelihoods(
    outputs: torch.Tensor, targets: torch.Tensor, head: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(target) at every position, 0 where a target is IGNORE: from logits, or from final
    states and the head's weight [vocabulary, d_model], a few rows at a time (a whole set of
    logits need never exist)."""
    width = head.shape[0] if head is not None else outputs.shape[-1]
    rows = max(1, (1 << 26) // (outputs.shape[1] * width))  # about 256 MB of logits a chunk
    found = []
    for start in range(0, len(outputs), rows):
        chunk, wanted = outputs[start : start + rows].float(), targets[start : start + rows]
        logits = chunk @ head.float().T if head is not None else chunk
        picked = torch.log_softmax(logits, dim=-1).gather(-1, wanted.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        found.append(picked * (wanted != IGNORE))
    return torch.cat(found)


# Prepared once a process: by settings, and by cache folder (a test may point it elsewhere).
@lru_cache(maxsize=4)
def _prepared(settings: str, cache: Path) -> lm_data.Prepared:
    return lm_data.prepare(LMConfig.model_validate_json(settings))


@lru_cache(maxsize=4)
def _choices(settings: str, cache: Path) -> ChoiceRows:
    cfg = LMConfig.model_validate_json(settings)
    return choice_rows(load_questions(cfg.zero_shot), _tokenizer(settings, cache), cfg.seq_len)


@lru_cache(maxsize=4)
def _tokenizer(settings: str, cache: Path) -> Tokenizer:
    return lm_data.tokenizer_for(LMConfig.model_validate_json(settings))


class LMTask(SequenceTask):
    name = "lm"
    description = (
        "Language modelling: predict each next token of real text (by default bytes of the Python "
        "standard library's source; or the user's corpus and tokenizer). Tests general-purpose "
        "sequence modelling: local syntax, long-range structure, and copying from earlier context. "
        "Metric: bits per byte on held-out documents (lower is better)."
    )
    config_class = LMConfig
    metric = "bits_per_byte"
    higher_is_better = False
    metric_optimum = 0.0
    quality_scale = 0.05  # 5% fewer bits per byte: a big step for a language model
    reference_baselines = ("softmax_attention", "gated_deltanet")
    # The scale ladder (README: parameters and tokens per run). asi-arch-explore is ASI-Arch's
    # exploration run (8 layers, width 256, context 2048, 2,000 steps of 256 x 2,048 tokens, GPT-2's
    # vocabulary size; pass their tokenizer.json as `tokenizer` to match it exactly), asi-arch-verify
    # its 340M verification model at about 20 tokens per parameter. Both are GPU runs: micro-batches
    # keep a step's activations within one H100.
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu-tiny": {},
        "asi-arch-explore": {
            "tokenizer": "bpe", "vocab_size": 50257, "max_corpus_bytes": 4_500_000_000,
            "seq_len": 2048, "d_model": 256, "n_layers": 8, "num_heads": 4, "mlp_ratio": 4.0,
            "steps": 2000, "batch_size": 256, "micro_batch_size": 16, "lr": 1e-3, "warmup_steps": 100,
            "eval_windows": 64, "log_every": 100,
        },
        "asi-arch-verify": {
            "tokenizer": "bpe", "vocab_size": 50257, "max_corpus_bytes": 30_000_000_000,
            "seq_len": 2048, "d_model": 1024, "n_layers": 24, "num_heads": 16, "mlp_ratio": 2.75,
            "steps": 13000, "batch_size": 256, "micro_batch_size": 8, "lr": 3e-4, "warmup_steps": 500,
            "eval_windows": 16, "log_every": 100,
        },
    }  # fmt: skip

    def prepared(self, cfg: LMConfig) -> lm_data.Prepared:
        """The corpus tokenized and split (host only: a job sees the training tokens alone)."""
        return _prepared(cfg.model_dump_json(), data_cache())

    def prepare(self, cfg: LMConfig) -> list[str]:
        paths = list(self.prepared(cfg).job_paths)
        self.choices(cfg)  # a missing or malformed benchmark fails now, before any job
        return paths

    def heldout_files(self, cfg: LMConfig) -> list[str]:
        return list(self.prepared(cfg).validation_files)

    def data_version(self, cfg: LMConfig) -> str:
        return lm_data.open_train(cfg).version  # readable in a job too

    def train_batches(self, cfg: LMConfig, seed: int, device: torch.device) -> Iterator[Batch]:
        """Random windows of the training tokens, read from their memory maps: a corpus of many
        gigabytes costs no memory. With several token files a window's file is drawn by length."""
        arrays = lm_data.open_train(cfg).arrays
        lengths = torch.tensor([len(a) - cfg.seq_len - 1 for a in arrays], dtype=torch.float64)
        if (lengths < 1).any():
            raise ValueError(f"a training token file is shorter than seq_len + 2 = {cfg.seq_len + 2} tokens")
        generator = torch.Generator().manual_seed(seed)
        pinned = device.type == "cuda"
        while True:
            if len(arrays) == 1:
                files = torch.zeros(cfg.batch_size, dtype=torch.long)
                starts = torch.randint(0, int(lengths[0]), (cfg.batch_size,), generator=generator)
            else:
                files = torch.multinomial(lengths, cfg.batch_size, replacement=True, generator=generator)
                starts = (
                    torch.rand(cfg.batch_size, generator=generator, dtype=torch.float64) * lengths[files]
                ).long()
            rows = np.stack(
                [
                    arrays[f][s : s + cfg.seq_len + 1]
                    for f, s in zip(files.tolist(), starts.tolist(), strict=True)
                ]
            )
            windows = torch.from_numpy(rows.astype(np.int64))
            if pinned:  # a page-locked copy moves to the GPU without holding up this thread
                windows = windows.pin_memory()
            windows = windows.to(device, non_blocking=pinned)
            yield Batch(windows[:, :-1], windows[:, 1:])

    def validation_windows(self, cfg: LMConfig, shift_seed: int | None = None) -> torch.Tensor:
        """Evenly spaced windows over the validation tokens, all shifted by less than their spacing
        (by `shift_seed`; none without one): the same tokens for every candidate of a study, and
        other tokens of the same text for a fresh held-out draw (a recheck, a replication)."""
        tokens = self.prepared(cfg).validation
        count = min(cfg.eval_windows, (len(tokens) - 1) // (cfg.seq_len + 1))
        span = len(tokens) - cfg.seq_len - 2
        spacing = span // max(count, 1)
        shift = 0 if shift_seed is None or spacing < 2 else shift_seed % spacing
        starts = np.linspace(0, span - shift, count).astype(np.int64) + shift
        return torch.from_numpy(np.stack([tokens[s : s + cfg.seq_len + 1] for s in starts]).astype(np.int64))

    def choices(self, cfg: LMConfig) -> ChoiceRows | None:
        """The zero-shot benchmarks' rows (host only: the files hold the answers)."""
        if not cfg.zero_shot:
            return None
        return _choices(cfg.model_dump_json(), data_cache())

    def heldout(self, cfg: LMConfig, secret_seed: int | None = None) -> Batch:
        """The validation windows, then a row per zero-shot choice."""
        windows = self.validation_windows(cfg, secret_seed)
        inputs, targets = windows[:, :-1], windows[:, 1:]
        if (rows := self.choices(cfg)) is not None:
            inputs, targets = torch.cat([inputs, rows.inputs]), torch.cat([targets, rows.targets])
        return Batch(inputs, targets)

    def outputs(
        self, model: nn.Module, inputs: torch.Tensor, cfg: LMConfig, device: torch.device
    ) -> torch.Tensor:
        """The final states the head reads, not logits: [rows, time, d_model] instead of
        [rows, time, vocabulary], which for a real vocabulary would be tens of gigabytes. The
        trusted side applies the trained head (`score_outputs`), so whatever states a job returns,
        its predictions are distributions."""
        return predict(model, inputs, cfg.batch_size, device, forward=model.hidden)

    def score_outputs(
        self, outputs: torch.Tensor, targets: torch.Tensor, cfg: LMConfig, weights: Mapping[str, torch.Tensor]
    ) -> dict[str, float]:
        head = weights.get("head.weight")
        if head is None or head.dim() != 2 or outputs.shape[-1] != head.shape[1]:
            raise ValueError(
                f"predict returned states of width {outputs.shape[-1]}, which the trained head cannot read"
            )
        return self._metrics(token_log_likelihoods(outputs, targets, head), targets, cfg)

    def score(self, logits: torch.Tensor, targets: torch.Tensor, cfg: LMConfig) -> dict[str, float]:
        return self._metrics(token_log_likelihoods(logits, targets), targets, cfg)

    def _metrics(
        self, log_likelihoods: torch.Tensor, targets: torch.Tensor, cfg: LMConfig
    ) -> dict[str, float]:
        """Nats per token, and bits per byte: the same nats spread over the bytes of text the
        targets stand for, which compares models across tokenizers; then zero-shot accuracy."""
        rows = self.choices(cfg)
        windows = len(targets) - (0 if rows is None else len(rows.targets))
        nats = -log_likelihoods[:windows].mean().item()
        tokenizer = _tokenizer(cfg.model_dump_json(), data_cache())
        text_bytes = sum(tokenizer.byte_count(row.numpy()) for row in targets[:windows])
        tokens = targets[:windows].numel()
        metrics = {"bits_per_byte": nats * tokens / max(text_bytes, 1) / math.log(2), "loss": nats}
        if rows is not None:
            metrics |= score_choices(log_likelihoods[windows:], rows.questions)
        return metrics
