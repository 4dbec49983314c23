"""What is particular to the MAD suite's compression and memorization tasks: compression's data, its
settings and the compression model that the harness owns around the candidate; memorization's keys,
its fact table (one for training and testing, chosen by table_seed) and its data versions. The tests
every synthetic task shares (shapes, labels, held-out sets, scoring, probes, sandboxed runs) cover
these two in test_synthetic_tasks.py."""

from __future__ import annotations

import pytest
import torch

from discover.experiments.baselines import builtin_baselines
from discover.experiments.tasks import get_task
from discover.experiments.tasks.base import IGNORE, SequenceTaskConfig, TaskConfigError
from discover.experiments.tasks.compression import (
    BLANK,
    FIRST_CONTENT,
    MARKER,
    CompressionModel,
    generate_compression,
)
from discover.experiments.tasks.memorization import fact_table, generate_memorization

SMALL = {"test_examples": 200}


def config(name: str, **overrides) -> SequenceTaskConfig:
    return get_task(name).config({**SMALL, **overrides})


def test_the_data_versions_name_the_generator_and_the_memorization_table():
    assert get_task("compression").data_version(config("compression")) == "generated:compression/v1"
    memorization = get_task("memorization")
    assert memorization.data_version(config("memorization")) == "generated:memorization/v1/table0"
    assert memorization.data_version(config("memorization", table_seed=3)).endswith("/table3")


# -- compression


def test_compression_content_comes_once_then_the_marker_then_blank_slots():
    inputs, targets = generate_compression(500, 16, 8, torch.Generator().manual_seed(0))
    assert inputs.shape == (500, 16)
    assert ((inputs[:, :8] >= FIRST_CONTENT) & (inputs[:, :8] < 16)).all()
    assert (inputs[:, 8] == MARKER).all() and (inputs[:, 9:] == BLANK).all()
    assert (targets[:, :8] == IGNORE).all() and torch.equal(targets[:, 8:], inputs[:, :8])
    with pytest.raises(ValueError, match="no content tokens"):
        generate_compression(2, 2, 8, torch.Generator())


def test_compression_settings_must_leave_one_slot_per_token():
    task = get_task("compression")
    assert task.config({"num_tokens": 8, "seq_len": 16}).num_tokens == 8
    with pytest.raises(TaskConfigError, match="seq_len"):
        task.config({"num_tokens": 8})


def test_the_compression_model_decodes_every_slot_from_the_marker_state_alone():
    task, cfg = get_task("compression"), config("compression", num_tokens=6, seq_len=12)
    torch.manual_seed(0)
    model = task.build_model(_load_mixer("softmax_attention"), cfg).eval()
    assert isinstance(model, CompressionModel) and len(model.mixers()) == cfg.n_layers
    inputs, _ = generate_compression(4, cfg.vocab_size, 6, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(inputs)
        assert logits.shape == (4, 12, cfg.vocab_size)
        assert (logits[:, :6] == 0).all()  # no label before the marker
        assert not torch.equal(logits[:, 6], logits[:, 7])  # each slot asks for its own token
        # The slots read nothing after the marker, and each depends on the first content token.
        blanks_changed = inputs.clone()
        blanks_changed[:, 7:] = FIRST_CONTENT
        assert torch.equal(model(blanks_changed), logits)
        first_changed = inputs.clone()
        first_changed[:, 0] = (first_changed[:, 0] - FIRST_CONTENT + 1) % 14 + FIRST_CONTENT
        moved = (model(first_changed) - logits).abs().amax(dim=-1)
        assert (moved[:, 6:] > 0).all()
    # Its parameters are the backbone's, a slot per token and the decoder: no unused head.
    loss = task.loss(model.train(), next(task.train_batches(cfg, 0, torch.device("cpu"))))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def _load_mixer(baseline: str) -> type[torch.nn.Module]:
    from discover.experiments.contract import load_mixer_class

    return load_mixer_class(builtin_baselines()[baseline])


# -- memorization


def test_memorization_keys_are_distinct_and_values_never_appear_in_the_inputs():
    inputs, targets = generate_memorization(300, 96, 16, 2, 32, 0, torch.Generator().manual_seed(0))
    keys = inputs.view(300, 16, 2)
    assert ((keys[..., 0] >= 0) & (keys[..., 0] < 16)).all()
    assert ((keys[..., 1] >= 16) & (keys[..., 1] < 32)).all()
    codes = keys[..., 0] * 16 + keys[..., 1] - 16
    assert all(len(set(row)) == 16 for row in codes.tolist())
    assert (inputs < 32).all()  # no value token is ever an input: nothing to copy
    assert (targets[:, 0::2] == IGNORE).all() and (targets[:, 1::2] >= 32).all()
    # The two tokens of a key together decide its value: no single token does.
    values_after = {}
    for code, value in zip(codes.flatten().tolist(), targets[:, 1::2].flatten().tolist(), strict=True):
        assert values_after.setdefault(code, value) == value
    first_token_values = {}
    for code, value in values_after.items():
        first_token_values.setdefault(code // 16, set()).add(value)
    assert max(len(values) for values in first_token_values.values()) > 1
    with pytest.raises(ValueError, match="no value tokens"):
        generate_memorization(2, 32, 16, 2, 32, 0, torch.Generator())
    with pytest.raises(ValueError, match="2-token keys"):
        generate_memorization(2, 96, 16, 2, 31, 0, torch.Generator())
    with pytest.raises(ValueError, match="at most 4"):
        generate_memorization(2, 96, 2, 2, 10, 0, torch.Generator())


def test_memorization_tests_the_trained_table_which_table_seed_chooses():
    task = get_task("memorization")
    small = {"key_vocab": 8, "vocab_size": 32, "seq_len": 16}
    cfg = config("memorization", **small)
    seen: dict[tuple[int, int], int] = {}
    train_batch = next(task.train_batches(cfg, seed=0, device=torch.device("cpu")))
    for inputs, targets in (train_batch, task.heldout(cfg), task.heldout(cfg, secret_seed=5)):
        for key, value in zip(inputs.view(-1, 2).tolist(), targets.view(-1, 2)[:, 1].tolist(), strict=True):
            assert seen.setdefault(tuple(key), value) == value  # one table for training and testing
    assert len(seen) == 64  # every fact gets asked
    # Another table_seed: the same questions, other answers.
    other = task.heldout(config("memorization", **small, table_seed=1))
    assert torch.equal(other.inputs, task.heldout(cfg).inputs)
    assert not torch.equal(other.targets, task.heldout(cfg).targets)


def test_keys_of_one_token_are_the_plain_table():
    inputs, targets = generate_memorization(50, 300, 256, 1, 32, 0, torch.Generator().manual_seed(0))
    assert (inputs < 256).all() and torch.equal(targets, fact_table(256, 44, 256, 0)[inputs])
