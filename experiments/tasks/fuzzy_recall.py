"""Fuzzy associative recall: keys and values several tokens long, after the MAD suite's task
(Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures").

The sequence opens with `num_kv_pairs` pairs of a `k_len`-token key and a `v_len`-token value. Key
tokens come from a small vocabulary of `key_vocab` tokens and are drawn with replacement, so keys
share tokens and only the whole key identifies a pair; value tokens come from the rest of the
vocabulary. After the pairs, each key appears once more, followed by its value, at random places
among filler tokens. The model must produce every value token: at the key's last token it predicts
the first value token, and at each value token the next one, as a language model writes it out
(teacher forcing). Labels exist only at those `v_len` positions per query.

    a b V W b a X Y 0 b a X Y 0 0 a b V W 0    (keys ab, ba; values VW, XY; 0: filler)
                        X Y         V W          <- targets
"""

from __future__ import annotations

import torch

from discover.experiments.tasks.base import IGNORE, Batch
from discover.experiments.tasks.generated import GeneratedTask, GeneratedTaskConfig

FILLER = 0  # token between queries
GENERATOR_VERSION = 1  # bump when the generator changes what a seed produces


class FuzzyRecallConfig(GeneratedTaskConfig):
    # Token ids: 0 filler, [1, 1 + key_vocab) key tokens, the rest value tokens.
    vocab_size: int = 32
    key_vocab: int = 4
    seq_len: int = 40  # 16 tokens of pairs, 16 of queries, 8 fillers between the queries
    num_kv_pairs: int = 4
    k_len: int = 2
    v_len: int = 2

    # Mixer-only blocks, as noisy_recall's: softmax attention learns recall sooner without the MLPs
    # (0.4 accuracy after 1000 steps with them, 0.9 after 2000 without), and in cheaper steps.
    mlp_ratio: float = 0.0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 50


def distinct_keys(
    num_examples: int, num_kv_pairs: int, k_len: int, key_vocab: int, generator: torch.Generator
) -> torch.Tensor:
    """[examples, pairs, k_len] key tokens in [0, key_vocab), no key twice in an example."""
    keys = torch.randint(0, key_vocab, (num_examples, num_kv_pairs, k_len), generator=generator)
    code_of = key_vocab ** torch.arange(k_len)  # a key as one integer, to compare whole keys
    # Redraw the examples that hold a key twice until none does: a few rounds, since with at least
    # num_kv_pairs^2 keys to draw from a round draws distinct keys more often than not.
    while True:
        codes = (keys * code_of).sum(-1).sort(dim=1).values
        repeated = (codes[:, 1:] == codes[:, :-1]).any(dim=1)
        if not repeated.any():
            return keys
        redraw = (int(repeated.sum()), num_kv_pairs, k_len)
        keys[repeated] = torch.randint(0, key_vocab, redraw, generator=generator)


def generate_fuzzy_recall(
    num_examples: int,
    vocab_size: int,
    key_vocab: int,
    seq_len: int,
    num_kv_pairs: int,
    k_len: int,
    v_len: int,
    generator: torch.Generator,
) -> Batch:
    """A batch of fuzzy-recall sequences, vectorised over examples (key redraws aside)."""
    span = k_len + v_len
    context = num_kv_pairs * span
    query_region = seq_len - context
    value_vocab = vocab_size - 1 - key_vocab
    if min(k_len, v_len, key_vocab, value_vocab) < 1:
        raise ValueError(
            f"k_len, v_len, key_vocab and vocab_size - 1 - key_vocab must be positive "
            f"(k_len {k_len}, v_len {v_len}, key_vocab {key_vocab}, vocab_size {vocab_size})"
        )
    if key_vocab**k_len < num_kv_pairs**2:  # the key redraws need keys to spare
        raise ValueError(
            f"key_vocab ** k_len = {key_vocab**k_len} keys, too few keys for {num_kv_pairs} pairs "
            f"(at least {num_kv_pairs**2})"
        )
    if query_region < context:
        raise ValueError(f"seq_len {seq_len} leaves no room for {num_kv_pairs} queries of {span} tokens")

    keys = 1 + distinct_keys(num_examples, num_kv_pairs, k_len, key_vocab, generator)
    values = torch.randint(
        1 + key_vocab, vocab_size, (num_examples, num_kv_pairs, v_len), generator=generator
    )
    pairs = torch.cat([keys, values], dim=2)  # [examples, pairs, span]

    inputs = torch.full((num_examples, seq_len), FILLER, dtype=torch.long)
    inputs[:, :context] = pairs.flatten(1)

    # Each pair is queried once, in a random order, at random places among fillers: choosing which
    # of the query region's units (queries of `span` tokens, single fillers) are queries, the i-th
    # query starts i * (span - 1) positions later than its unit index.
    units = query_region - num_kv_pairs * (span - 1)
    query_units = torch.rand(num_examples, units, generator=generator).topk(num_kv_pairs, dim=1).indices
    starts = context + query_units.sort(dim=1).values + (span - 1) * torch.arange(num_kv_pairs)
    order = torch.rand(num_examples, num_kv_pairs, generator=generator).argsort(dim=1)
    queried = pairs.gather(1, order[:, :, None].expand(-1, -1, span))
    positions = starts[:, :, None] + torch.arange(span)  # [examples, pairs, span]
    inputs.scatter_(1, positions.flatten(1), queried.flatten(1))

    # Value token j is predicted one position before it: from the key's last token, then from
    # value token j - 1.
    targets = torch.full_like(inputs, IGNORE)
    labelled = positions[:, :, k_len - 1 : span - 1]
    targets.scatter_(1, labelled.flatten(1), queried[:, :, k_len:].flatten(1))
    return Batch(inputs, targets)


class FuzzyRecallTask(GeneratedTask):
    name = "fuzzy_recall"
    description = (
        "Fuzzy associative recall: keys and values are several tokens long, and keys share tokens, "
        "so only a whole key identifies its pair. After the pairs each key reappears, followed by "
        "its value, and the model must produce every value token: the first at the key's last "
        "token, each next one at the value token before it. Tests whether a mixer can merge "
        "neighbouring tokens into one key and recall a multi-token value. Metric: per-token "
        "accuracy over those value positions of a fixed held-out set (higher is better)."
    )
    config_class = FuzzyRecallConfig
    generator_version = GENERATOR_VERSION

    def generate(self, cfg: FuzzyRecallConfig, count: int, generator: torch.Generator) -> Batch:
        return generate_fuzzy_recall(
            count,
            cfg.vocab_size,
            cfg.key_vocab,
            cfg.seq_len,
            cfg.num_kv_pairs,
            cfg.k_len,
            cfg.v_len,
            generator,
        )
