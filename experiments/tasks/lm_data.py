"""The lm task's data: a corpus read once on the host, tokenized, and kept as flat token files that
jobs read by memory map.

A corpus (`corpus_format`) is one of:

    text     a folder of text files (`corpus_glob`), split into train and validation by a hash of each
             file's path; the default corpus, the Python standard library, holds out whole folders
    jsonl    JSON-lines files (a file, or a folder of them), a document per line in `text_field`
    parquet  Parquet files (a file, or a folder of them), a document per row in `text_field`
    tokens   pre-tokenized files in a folder: header-less arrays of `token_dtype` ids, the training
             files matching `train_files` and the validation files `validation_files`

Preparing (`prepare`, trusted, on the host) writes the training tokens to `<cache>/lm/<key>/` and
the validation tokens to `<cache>/lm-validation/<key>/`, where the key is a hash of the settings that
decide the data; a `tokens` corpus is not copied, its files are read where they are. A job is shown
the training folder (and a `tokens` corpus's training files) read-only, nothing else of the corpus:
validation tokens never enter a sandbox, whatever the format. Preparing again is free unless the
corpus's files (their sizes and modification times) or the tokenizer changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from discover.experiments.files import data_cache, write_json_atomic
from discover.experiments.tasks.lm_tokenizer import (
    ByteTokenizer,
    Tokenizer,
    load_tokenizer_file,
    smallest_dtype,
    train_bpe,
)

if TYPE_CHECKING:
    from discover.experiments.tasks.lm import LMConfig

PREPARED_FORMAT = 1  # bump when what `prepare` writes changes
FORMAT_GLOBS = {"jsonl": "**/*.jsonl", "parquet": "**/*.parquet"}
# The default corpus's validation text: standard-library folders that no job imports (Python, torch
# and discover start without them), so that every sandbox can show them empty.
STDLIB_VALIDATION_FOLDERS = ("idlelib", "lib2to3", "pydoc_data", "tkinter", "turtledemo", "venv")


@dataclass(frozen=True)
class Document:
    source: str  # relative path (and line or row): what the train/validation split hashes
    file: Path
    text: bytes


@dataclass(frozen=True)
class TrainTokens:
    """What a job reads: the training token arrays (memory-mapped) and the data's version."""

    arrays: tuple[np.ndarray, ...]
    version: str


@dataclass(frozen=True)
class Prepared:
    """What the host has: the job's view plus the validation tokens and where they came from."""

    train: TrainTokens
    validation: np.ndarray
    validation_files: tuple[str, ...]  # host files held out (text corpora), shown empty to jobs
    job_paths: tuple[str, ...]  # host paths a job reads, read-only


def corpus_format(cfg: LMConfig) -> str:
    """The format `auto` stands for: by the file's suffix, or what the folder holds."""
    if cfg.corpus_format != "auto":
        return cfg.corpus_format
    if cfg.corpus is None:
        return "text"
    root = Path(cfg.corpus)
    if root.is_file():
        return {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}.get(root.suffix, "text")
    if cfg.train_files is not None:
        return "tokens"
    for name, glob in FORMAT_GLOBS.items():
        if root.is_dir() and next(root.glob(glob), None) is not None:
            return name
    return "text"


def data_key(cfg: LMConfig) -> str:
    """A hash of the settings that decide the data: the name of its prepared folders. A job
    computes it too, without reading the corpus."""
    fields = (
        "corpus", "corpus_format", "corpus_glob", "text_field", "validation_percent", "max_corpus_bytes",
        "tokenizer", "train_files", "validation_files", "token_dtype",
    )  # fmt: skip
    decided = {name: getattr(cfg, name) for name in fields}
    decided["corpus"] = cfg.corpus or f"stdlib:{sysconfig.get_paths()['stdlib']}"  # absolute already
    if cfg.tokenizer == "bpe":
        decided["vocab_size"] = cfg.vocab_size
    text = json.dumps(decided | {"format": PREPARED_FORMAT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def train_folder(cfg: LMConfig) -> Path:
    return data_cache() / "lm" / data_key(cfg)


def validation_folder(cfg: LMConfig) -> Path:
    return data_cache() / "lm-validation" / data_key(cfg)


def open_train(cfg: LMConfig) -> TrainTokens:
    """The training tokens as prepared: in a job, where nothing else of the corpus is visible."""
    meta_path = train_folder(cfg) / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"the lm data for these settings was never prepared ({meta_path} is missing)")
    meta = json.loads(meta_path.read_text())
    files = [train_folder(cfg) / "train.bin"] if meta["files"] is None else [Path(f) for f in meta["files"]]
    arrays = tuple(np.memmap(f, dtype=meta["dtype"], mode="r") for f in files if f.stat().st_size > 0)
    return TrainTokens(arrays, meta["version"])


def prepare(cfg: LMConfig) -> Prepared:
    """The corpus, tokenized and split, prepared once (trusted code, on the host)."""
    fmt = corpus_format(cfg)
    files = source_files(cfg, fmt)
    tokenizer_file = [Path(cfg.tokenizer)] if cfg.tokenizer not in ("bytes", "bpe") else []
    fingerprint = hashlib.sha256(data_key(cfg).encode())
    for path in [*files, *tokenizer_file]:
        stat = path.stat()
        fingerprint.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    version = fingerprint.hexdigest()[:16]
    train_dir, validation_dir = train_folder(cfg), validation_folder(cfg)
    if not _current(train_dir, version) or not _current(validation_dir, version):
        if fmt == "tokens":
            _index_token_files(cfg, version)
        else:
            _tokenize(cfg, fmt, files, version)
    validation_meta = json.loads((validation_dir / "meta.json").read_text())
    validation_files = [Path(f) for f in validation_meta["files"]]
    validation = np.concatenate(
        [np.memmap(f, dtype=validation_meta["dtype"], mode="r") for f in validation_files if f.stat().st_size]
    )
    train = open_train(cfg)
    train_files = json.loads((train_dir / "meta.json").read_text())["files"] or []
    return Prepared(
        train,
        validation,
        tuple(validation_meta["held_out"]),
        (str(train_dir), *train_files),
    )


def _current(folder: Path, version: str) -> bool:
    meta = folder / "meta.json"
    return meta.exists() and json.loads(meta.read_text()).get("version") == version


def corpus_root(cfg: LMConfig) -> Path:
    return Path(cfg.corpus) if cfg.corpus else Path(sysconfig.get_paths()["stdlib"])


def source_files(cfg: LMConfig, fmt: str) -> list[Path]:
    """The corpus files that decide the data, sorted: their sizes and times are its fingerprint."""
    root = corpus_root(cfg)
    if not root.exists():
        raise FileNotFoundError(f"corpus {root} does not exist")
    if fmt == "tokens":
        if not root.is_dir() or cfg.train_files is None or cfg.validation_files is None:
            raise ValueError("a tokens corpus is a folder, with train_files and validation_files (globs) set")
        train, validation = sorted(root.glob(cfg.train_files)), sorted(root.glob(cfg.validation_files))
        if not train or not validation:
            raise ValueError(
                f"corpus {root}: train_files {cfg.train_files!r} and validation_files "
                f"{cfg.validation_files!r} must each match a file"
            )
        if set(train) & set(validation):
            raise ValueError(f"corpus {root}: a file matches both train_files and validation_files")
        return [*train, *validation]
    if root.is_file():
        return [root]
    glob = cfg.corpus_glob or FORMAT_GLOBS.get(fmt, "**/*.py")
    files = [p for p in sorted(root.glob(glob)) if p.is_file() and "site-packages" not in p.parts]
    if not files:
        raise ValueError(f"corpus {root} has no files matching {glob}")
    return files


def documents(cfg: LMConfig, fmt: str, files: list[Path]) -> Iterator[Document]:
    """The corpus's documents in a fixed order: each text file whole, each JSON line, each row."""
    root = corpus_root(cfg)
    for path in files:
        relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
        if fmt == "text":
            yield Document(relative, path, path.read_bytes())
        elif fmt == "jsonl":
            with path.open("rb") as stream:
                for number, line in enumerate(stream, 1):
                    if line.strip():
                        yield Document(
                            f"{relative}:{number}", path, _json_text(line, cfg.text_field, path, number)
                        )
        else:
            yield from _parquet_documents(path, relative, cfg.text_field)


def _json_text(line: bytes, field: str, path: Path, number: int) -> bytes:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
        raise ValueError(f"{path}:{number}: no text field {field!r} (set text_field)")
    return record[field].encode("utf-8")


def _parquet_documents(path: Path, relative: str, field: str) -> Iterator[Document]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("Parquet corpora need pyarrow: pip install 'discover-arch[parquet]'") from None
    table = pq.ParquetFile(path)
    if field not in table.schema_arrow.names:
        raise ValueError(f"{path}: no column {field!r} (set text_field)")
    row = 0
    for batch in table.iter_batches(columns=[field]):
        for text in batch.column(0).to_pylist():
            row += 1
            if text:
                yield Document(f"{relative}:{row}", path, text.encode("utf-8"))


def _held_out(cfg: LMConfig, source: str) -> bool:
    if cfg.corpus is None:
        return source.split("/")[0] in STDLIB_VALIDATION_FOLDERS
    return int(hashlib.sha256(source.encode()).hexdigest(), 16) % 100 < cfg.validation_percent


def _tokenizer(cfg: LMConfig, train_documents: list[bytes]) -> Tokenizer:
    if cfg.tokenizer == "bytes":
        return ByteTokenizer()
    if cfg.tokenizer == "bpe":
        return train_bpe(train_documents, cfg.vocab_size, data_cache() / "tokenizers")
    return load_tokenizer_file(cfg.tokenizer)


def tokenizer_for(cfg: LMConfig) -> Tokenizer:
    """The tokenizer the prepared data was made with (host only): for counting bytes."""
    if cfg.tokenizer == "bytes":
        return ByteTokenizer()
    return load_tokenizer_file(json.loads((validation_folder(cfg) / "meta.json").read_text())["tokenizer"])


def _tokenize(cfg: LMConfig, fmt: str, files: list[Path], version: str) -> None:
    train: list[bytes] = []
    validation: list[bytes] = []
    held_out_files: set[str] = set()
    # Training text up to max_corpus_bytes; validation text until it is its share of that.
    train_bytes, validation_bytes, train_full = 0, 0, False
    validation_budget = max(cfg.max_corpus_bytes * cfg.validation_percent // 100, 1)
    for document in documents(cfg, fmt, files):
        if _held_out(cfg, document.source):
            if validation_bytes < validation_budget:
                validation_bytes += len(document.text)
                validation.append(document.text)
                if fmt == "text":
                    held_out_files.add(str(document.file.resolve()))
        elif train_full or train_bytes + len(document.text) > cfg.max_corpus_bytes:
            train_full = True
            if validation_bytes >= validation_budget:
                break
        else:
            train_bytes += len(document.text)
            train.append(document.text)
    if not train or not validation:
        raise ValueError(
            f"corpus {cfg.corpus or 'stdlib'} has too few documents for a train/validation split"
        )
    tokenizer = _tokenizer(cfg, train)
    if (size := tokenizer.vocab_size) > cfg.vocab_size:
        raise ValueError(f"the tokenizer has {size} tokens: set vocab_size to at least {size}")
    dtype = smallest_dtype(tokenizer.vocab_size)
    with _replacing(validation_folder(cfg)) as folder:
        _write_tokens(folder / "validation.bin", tokenizer, validation, dtype)
        meta = {
            "version": version, "dtype": dtype.name, "held_out": sorted(held_out_files),
            "files": [str(validation_folder(cfg) / "validation.bin")],
            "tokenizer": getattr(tokenizer, "path", None),
        }  # fmt: skip
        write_json_atomic(folder / "meta.json", meta)
    with _replacing(train_folder(cfg)) as folder:
        _write_tokens(folder / "train.bin", tokenizer, train, dtype)
        write_json_atomic(folder / "meta.json", {"version": version, "dtype": dtype.name, "files": None})


def _index_token_files(cfg: LMConfig, version: str) -> None:
    """A `tokens` corpus stays where it is: the prepared folders only list its files."""
    root = Path(cfg.corpus or "")
    train = [str(p.resolve()) for p in sorted(root.glob(cfg.train_files or ""))]
    validation = [str(p.resolve()) for p in sorted(root.glob(cfg.validation_files or ""))]
    for path in [*train, *validation]:
        if os.path.getsize(path) % np.dtype(cfg.token_dtype).itemsize:
            raise ValueError(f"{path} is not a whole number of {cfg.token_dtype} tokens")
    meta = {"version": version, "dtype": cfg.token_dtype}
    with _replacing(validation_folder(cfg)) as folder:
        tokenizer = None if cfg.tokenizer == "bytes" else str(Path(cfg.tokenizer).resolve())
        write_json_atomic(
            folder / "meta.json", meta | {"files": validation, "held_out": [], "tokenizer": tokenizer}
        )
    with _replacing(train_folder(cfg)) as folder:
        write_json_atomic(folder / "meta.json", meta | {"files": train})


def _write_tokens(
    path: Path, tokenizer: Tokenizer, texts: list[bytes], dtype: np.dtype, chunk: int = 256
) -> None:
    with path.open("wb") as stream:
        for start in range(0, len(texts), chunk):
            for ids in tokenizer.encode(texts[start : start + chunk]):
                np.concatenate([ids, tokenizer.separator]).astype(dtype).tofile(stream)


@contextmanager
def _replacing(folder: Path) -> Iterator[Path]:
    """A folder written beside its final place and renamed over it whole: a job, or a study
    preparing the same data at the same time, never sees it half-written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    scratch.chmod(0o755)  # a sandboxed job runs as another user
    for path in scratch.iterdir():
        path.chmod(0o644)
    retired = folder.with_name(f".{folder.name}-retired-{os.getpid()}")
    if folder.exists():
        folder.rename(retired)
    scratch.rename(folder)
    shutil.rmtree(retired, ignore_errors=True)
