"""Task data: MQAR's structure and determinism, the LM corpus split, config validation."""

import sysconfig
from pathlib import Path

import pytest
import torch

from discover.experiments.tasks import TaskConfigError, get_task
from discover.experiments.tasks.base import IGNORE
from discover.experiments.tasks.lm import STDLIB_VALIDATION_FOLDERS, LMConfig, load_corpus
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


def test_lm_split_is_by_file_and_deterministic(tmp_path):
    for i in range(40):
        (tmp_path / f"file{i}.txt").write_text(f"document {i}\n" * 20)
    a = load_corpus(str(tmp_path), "*.txt", 10, 10**9)
    load_corpus.cache_clear()
    b = load_corpus(str(tmp_path), "*.txt", 10, 10**9)
    assert torch.equal(a.train, b.train) and a.version == b.version
    train_text, validation_text = bytes(a.train.tolist()), bytes(a.validation.tolist())
    held_out = {line for line in validation_text.split(b"\n") if line}
    assert held_out and not held_out & {line for line in train_text.split(b"\n") if line}


def test_lm_jobs_see_validation_files_empty_and_train_on_the_same_text(tmp_path):
    for i in range(40):
        (tmp_path / f"file{i}.txt").write_text(f"document {i}\n" * 20)
    budget = 30 * len("document 10\n" * 20)  # fewer training files than the folder holds
    corpus = load_corpus(str(tmp_path), "*.txt", 10, budget)
    assert corpus.validation_files and len(corpus.train) <= budget
    for path in corpus.validation_files:  # what every sandbox shows a job
        Path(path).write_bytes(b"")
    load_corpus.cache_clear()
    in_job = load_corpus(str(tmp_path), "*.txt", 10, budget)
    assert torch.equal(in_job.train, corpus.train) and len(in_job.validation) == 0


def test_lm_default_corpus_is_the_standard_library():
    task = get_task("lm")
    cfg = LMConfig()
    corpus = task.corpus(cfg)
    assert len(corpus.train) > 1_000_000 and len(corpus.validation) > 50_000
    held_out = {
        Path(path).relative_to(Path(sysconfig.get_paths()["stdlib"]).resolve()).parts[0]
        for path in corpus.validation_files
    }
    assert held_out <= set(STDLIB_VALIDATION_FOLDERS), held_out
    batch = next(task.train_batches(cfg, seed=0, device=torch.device("cpu")))
    assert batch.inputs.shape == (cfg.batch_size, cfg.seq_len)
    assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])  # next-byte prediction


def test_lm_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_task("lm").corpus(LMConfig(corpus_dir=str(tmp_path / "missing")))


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
