"""Memorization, after the MAD suite (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures").

A fixed table gives each key a value; the values are drawn once from `table_seed`, so every
sequence, training and held-out alike, asks about the same facts. A key is `key_len` tokens, the
j-th from a vocabulary of `key_vocab` tokens of its own, so the table holds key_vocab ** key_len
facts. A sequence is distinct keys one after another, and the target at each key's last token is
its value. No key repeats within a sequence and values never appear in the inputs, so nothing can
be copied from context: the table must be learned in the weights. With keys of two or more tokens
no embedding row holds a fact: the mixer must bring a key's tokens together and the MLPs store the
table (with `key_len` 1 the embeddings alone learn it, for any mixer, within a hundred steps). The
held-out set asks about the same table in other sequences (its own seed, secret in a sandbox):
memorization is by definition tested on the facts that were trained.

    a3 b7 a3 b1 a9 b7 ...      (keys a3b7, a3b1, a9b7: a from one vocabulary, b from another)
       v5    v2    v5 ...      <- targets: the table's value of each key
"""

from __future__ import annotations

import torch
from pydantic import Field

from discover.experiments.tasks.base import IGNORE, Batch
from discover.experiments.tasks.generated import GeneratedTask, GeneratedTaskConfig, distinct_tokens

GENERATOR_VERSION = 1  # bump when the generator or the table changes what a seed produces


class MemorizationConfig(GeneratedTaskConfig):
    # Token ids: [0, key_len * key_vocab) key tokens (the j-th of a key from the j-th block of
    # key_vocab), then values up to vocab_size.
    vocab_size: int = 320  # 64 value tokens
    key_vocab: int = Field(128, ge=1)  # 16384 facts
    key_len: int = Field(2, ge=1)
    seq_len: int = 32  # a multiple of key_len: seq_len / key_len keys
    table_seed: int = Field(0, ge=0)  # the facts; part of data_version

    # The table's size decides what separates (1000 steps, one seed, benchmarks/difficulty.py):
    # with 4096 facts five baselines knew every fact, with 9216 three did, and with 16384 none:
    # softmax attention 0.75, Mamba2 0.60, GLA 0.42, Gated DeltaNet 0.18, DeltaNet 0.07, linear
    # attention 0.05 (chance 1/64). With 1024 facts even linear attention reached 0.94.
    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50


def fact_table(num_facts: int, num_values: int, first_value: int, table_seed: int) -> torch.Tensor:
    """[num_facts] each key's value token, drawn with replacement from num_values tokens."""
    generator = torch.Generator().manual_seed(table_seed)
    return torch.randint(first_value, first_value + num_values, (num_facts,), generator=generator)


def generate_memorization(
    num_examples: int,
    vocab_size: int,
    key_vocab: int,
    key_len: int,
    seq_len: int,
    table_seed: int,
    generator: torch.Generator,
) -> Batch:
    """A batch of memorization sequences, vectorised over examples."""
    num_facts, first_value = key_vocab**key_len, key_len * key_vocab
    num_keys = seq_len // key_len
    if vocab_size <= first_value:
        raise ValueError(f"vocab_size {vocab_size} leaves no value tokens after {first_value} key tokens")
    if seq_len % key_len or num_keys > num_facts:
        raise ValueError(f"seq_len {seq_len} is not {key_len}-token keys, at most {num_facts} of them")
    table = fact_table(num_facts, vocab_size - first_value, first_value, table_seed)

    facts = distinct_tokens(num_examples, num_keys, 0, num_facts, generator)  # in random order
    # Fact index -> its key_len digits base key_vocab, the j-th shifted into the j-th block.
    place = key_vocab ** torch.arange(key_len - 1, -1, -1)
    digits = facts[..., None] // place % key_vocab + key_vocab * torch.arange(key_len)
    inputs = digits.flatten(1)
    targets = torch.full((num_examples, num_keys, key_len), IGNORE, dtype=torch.long)
    targets[..., -1] = table[facts]
    return Batch(inputs, targets.flatten(1))


class MemorizationTask(GeneratedTask):
    name = "memorization"
    description = (
        "Memorization: a fixed table of facts from keys of a few tokens to value tokens; each "
        "sequence lists distinct keys and the model must output each key's value at its last token. "
        "Values never appear in the inputs, so nothing can be copied from context: the facts must be "
        "stored in the weights. Tests whether a mixer brings a key's tokens together so that the "
        "model can store and look up facts in its parameters. Metric: accuracy at the keys of a "
        "held-out set of new sequences of the same facts (higher is better)."
    )
    config_class = MemorizationConfig
    generator_version = GENERATOR_VERSION

    def generate(self, cfg: MemorizationConfig, count: int, generator: torch.Generator) -> Batch:
        return generate_memorization(
            count, cfg.vocab_size, cfg.key_vocab, cfg.key_len, cfg.seq_len, cfg.table_seed, generator
        )

    def data_version(self, cfg: MemorizationConfig) -> str:
        return f"{super().data_version(cfg)}/table{cfg.table_seed}"
