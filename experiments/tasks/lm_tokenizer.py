"""The lm task's tokenizers: bytes, a BPE trained on the corpus, or the user's `tokenizer.json`.

Nothing is downloaded. A trained BPE is cached under the data cache by the hash of the text it was
trained on and its vocabulary size, so every run of a study (and every study) on the same corpus
tokenizes it the same way. Tokenizers run on the host only: jobs read token ids already prepared
(`discover.experiments.tasks.lm_data`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

END_OF_TEXT = "<|endoftext|>"  # between documents, for the BPE kinds


class Tokenizer(Protocol):
    vocab_size: int
    separator: list[int]  # put between documents (empty for bytes: files are just concatenated)

    def encode(self, documents: list[bytes]) -> list[np.ndarray]: ...

    def byte_count(self, ids: np.ndarray) -> int:
        """How many bytes of text `ids` stand for: the denominator of bits per byte."""
        ...


class ByteTokenizer:
    def __init__(self) -> None:
        self.vocab_size = 256
        self.separator: list[int] = []

    def encode(self, documents: list[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(document, dtype=np.uint8) for document in documents]

    def byte_count(self, ids: np.ndarray) -> int:
        return int(ids.size)


class HFTokenizer:
    """A `tokenizers` tokenizer: trained here or loaded from the user's file."""

    def __init__(self, tokenizer, path: Path) -> None:
        self.tokenizer = tokenizer
        self.path = str(path.resolve())  # recorded with the prepared data, to count bytes later
        self.vocab_size = tokenizer.get_vocab_size()
        eos = tokenizer.token_to_id(END_OF_TEXT)
        self.separator = [] if eos is None else [eos]

    def encode(self, documents: list[bytes]) -> list[np.ndarray]:
        texts = [document.decode("utf-8", errors="replace") for document in documents]
        return [np.asarray(encoding.ids, dtype=np.int64) for encoding in self.tokenizer.encode_batch(texts)]

    def byte_count(self, ids: np.ndarray) -> int:
        return len(self.tokenizer.decode(ids.tolist(), skip_special_tokens=True).encode("utf-8"))


def train_bpe(documents: Iterable[bytes], vocab_size: int, cache: Path) -> HFTokenizer:
    """A byte-level BPE of `vocab_size` tokens trained on `documents`, cached by their content hash."""
    from tokenizers import Tokenizer as Raw
    from tokenizers import decoders, models, pre_tokenizers, trainers

    documents = list(documents)
    digest = hashlib.sha256()
    for document in documents:
        digest.update(hashlib.sha256(document).digest())
    path = cache / f"bpe-{vocab_size}-{digest.hexdigest()[:16]}.json"
    if path.exists():
        return HFTokenizer(Raw.from_file(str(path)), path)
    raw = Raw(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable, nothing unknown
        show_progress=False,
    )
    raw.train_from_iterator((d.decode("utf-8", errors="replace") for d in documents), trainer=trainer)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    raw.save(str(partial))
    partial.replace(path)
    return HFTokenizer(raw, path)


def load_tokenizer_file(path: str) -> HFTokenizer:
    from tokenizers import Tokenizer as Raw

    if not Path(path).is_file():
        raise FileNotFoundError(f"tokenizer file {path} does not exist")
    try:
        return HFTokenizer(Raw.from_file(path), Path(path))
    except Exception as exc:  # the library raises a bare Exception for a malformed file
        raise ValueError(f"tokenizer file {path} is not a tokenizers JSON file: {exc}") from None


def smallest_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds every token id."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"a vocabulary of {vocab_size} tokens is too large")
