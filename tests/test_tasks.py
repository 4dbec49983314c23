"""Task data: MQAR's structure and determinism, config validation (the lm task's data: test_lm_data)."""

import pytest
import torch

from discover.experiments.tasks import TaskConfigError, get_task
from discover.experiments.tasks.base import IGNORE
from discover.experiments.tasks.mqar import FILLER, generate_mqar


def mqar(seed=0, n=256, vocab=128, seq_len=64, pairs=8, power_a=0.01):
    return generate_mqar(n, vocab, seq_len, pairs, power_a, torch.Generator().manual_seed(seed))


def test_mqar_keys_and_values_come_from_their_halves_and_are_distinct():
    inputs, _ = mqar()
    keys, values = inputs[:, 0:16:2], inputs[:, 1:16:2]
    assert ((keys >= 1) & (keys < 64)).all()
    assert ((values >= 64) & (values < 128)).all()
    assert all(len(set(row.tolist())) == 8 for row in keys)


def test_every_key_is_queried_once_and_labelled_with_its_value():
    inputs, targets = mqar()
    for row_in, row_t in zip(inputs, targets, strict=True):
        pairs = dict(zip(row_in[0:16:2].tolist(), row_in[1:16:2].tolist(), strict=True))
        query_positions = (row_t != IGNORE).nonzero().flatten()
        assert len(query_positions) == 8 and (query_positions >= 16).all()
        queried = row_in[query_positions].tolist()
        assert sorted(queried) == sorted(pairs)
        assert row_t[query_positions].tolist() == [pairs[k] for k in queried]
        others = torch.ones_like(row_in, dtype=torch.bool)
        others[:16] = False
        others[query_positions] = False
        assert (row_in[others] == FILLER).all()


def test_mqar_is_deterministic_by_seed():
    assert torch.equal(mqar(seed=3).inputs, mqar(seed=3).inputs)
    assert not torch.equal(mqar(seed=3).inputs, mqar(seed=4).inputs)


def test_query_gaps_follow_a_decreasing_power_law():
    _, targets = mqar(n=4000, seq_len=128, pairs=8)
    gaps = (targets != IGNORE).nonzero()[:, 1] - 16
    counts = torch.bincount(gaps, minlength=112).float()
    # Early offsets are chosen far more often than late ones, yet late ones do occur.
    assert counts[:10].mean() > 3 * counts[-30:].mean() > 0


def test_mqar_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="too few keys"):
        generate_mqar(2, 8, 64, 8, 0.01, torch.Generator())
    with pytest.raises(ValueError, match="no room"):
        generate_mqar(2, 256, 20, 8, 0.01, torch.Generator())


def test_mqar_test_set_is_fixed_and_independent_of_training_seed():
    task = get_task("mqar")
    cfg = task.config({"test_examples": 64})
    assert torch.equal(task.heldout(cfg).inputs, task.heldout(cfg).inputs)
    train_batch = next(task.train_batches(cfg, seed=0, device=torch.device("cpu")))
    assert not torch.equal(train_batch.inputs, task.heldout(cfg).inputs[: cfg.batch_size])


def test_config_overrides_are_validated():
    task = get_task("mqar")
    assert task.config({"steps": "12"}).steps == 12
    with pytest.raises(TaskConfigError, match="unknown setting 'stepz'"):
        task.config({"stepz": "12"})
    with pytest.raises(TaskConfigError, match="bad setting 'lr'"):
        task.config({"lr": "fast"})
    with pytest.raises(TaskConfigError, match="unknown task"):
        get_task("imagenet")


def test_a_secret_seed_replaces_the_default_held_out_set_but_not_a_fixed_one():
    task = get_task("mqar")
    default, fixed = task.config({"test_examples": 32}), task.config({"test_examples": 32, "test_seed": 7})
    assert not torch.equal(task.heldout(default, secret_seed=123).inputs, task.heldout(default).inputs)
    assert torch.equal(task.heldout(fixed, secret_seed=123).inputs, task.heldout(fixed).inputs)
