"""The synthetic tasks beside MQAR (noisy_recall, fuzzy_recall, selective_copy, and the MAD suite's
compression and memorization), in tests every task shares: their data's shapes and labels, their
secret held-out sets, their scoring (an oracle scores perfectly, a constant guess near chance), the
probes a built-in mixer passes, and one short sandboxed check and training each. Then the structure
of noisy_recall, fuzzy_recall and selective_copy; compression's and memorization's own structure is
in test_compression_memorization.py."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
import torch

from discover.experiments.baselines import builtin_baselines
from discover.experiments.probes import check
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import TASKS, compression, get_task
from discover.experiments.tasks.base import IGNORE, SequenceTaskConfig
from discover.experiments.tasks.compression import MARKER
from discover.experiments.tasks.fuzzy_recall import FILLER, generate_fuzzy_recall
from discover.experiments.tasks.memorization import fact_table
from discover.experiments.tasks.noisy_recall import context_length, generate_noisy_recall
from discover.experiments.tasks.selective_copy import (
    BLANK,
    FIRST_CONTENT,
    SEPARATOR,
    generate_selective_copy,
)
from discover.sandbox.base import Limits
from discover.sandbox.process import ProcessBackend
from discover.sandbox.runner import Sandbox
from discover.vetting.candidate import vet

TASK_NAMES = ["noisy_recall", "fuzzy_recall", "selective_copy", "compression", "memorization"]
SMALL = {"test_examples": 200}


def config(name: str, **overrides) -> SequenceTaskConfig:
    return get_task(name).config({**SMALL, **overrides})


def heldout(name: str, **overrides):
    task = get_task(name)
    return task.heldout(task.config({**SMALL, **overrides}))


def data_version(name: str) -> str:
    """The data version of a task's default settings (memorization's names its table too)."""
    return f"generated:{name}/v1" + ("/table0" if name == "memorization" else "")


# -- oracles: the right answer at every position, from the inputs alone


def noisy_recall_oracle(inputs: torch.Tensor, cfg) -> torch.Tensor:
    """At a query, the token that followed the same key in the context (the rest: token 0)."""
    context = context_length(cfg.num_kv_pairs, cfg.noise_rate)
    answers = torch.zeros_like(inputs)
    for row, tokens in enumerate(inputs.tolist()):
        value_of = {tokens[i]: tokens[i + 1] for i in range(context - 1) if is_key(tokens[i], cfg)}
        for position in range(context, len(tokens)):
            answers[row, position] = value_of.get(tokens[position], 0)
    return answers


def is_key(token: int, cfg) -> bool:
    half = (cfg.vocab_size - cfg.noise_vocab) // 2
    return cfg.noise_vocab <= token < cfg.noise_vocab + half


def fuzzy_recall_oracle(inputs: torch.Tensor, cfg) -> torch.Tensor:
    """Where the tokens so far end in a whole key plus the first j tokens of its value, value token j."""
    span = cfg.k_len + cfg.v_len
    context = cfg.num_kv_pairs * span
    answers = torch.zeros_like(inputs)
    for row, tokens in enumerate(inputs.tolist()):
        pairs = [tokens[start : start + span] for start in range(0, context, span)]
        next_token = {
            tuple(pair[: cfg.k_len + j]): pair[cfg.k_len + j] for pair in pairs for j in range(cfg.v_len)
        }
        for position in range(context, len(tokens)):
            for length in range(cfg.k_len, span):
                prefix = tuple(tokens[position - length + 1 : position + 1])
                if prefix in next_token:
                    answers[row, position] = next_token[prefix]
    return answers


def selective_copy_oracle(inputs: torch.Tensor, cfg) -> torch.Tensor:
    """At the i-th separator, the i-th content token before the first separator."""
    answers = torch.zeros_like(inputs)
    for row, tokens in enumerate(inputs.tolist()):
        section = tokens.index(SEPARATOR)
        content = [token for token in tokens[:section] if token != BLANK]
        for i, position in enumerate(range(section, len(tokens))):
            answers[row, position] = content[i] if i < len(content) else 0
    return answers


def compression_oracle(inputs: torch.Tensor, cfg) -> torch.Tensor:
    """At slot i (position num_tokens + i), the i-th token before the marker."""
    answers = torch.zeros_like(inputs)
    for row, tokens in enumerate(inputs.tolist()):
        content = tokens[: tokens.index(MARKER)]
        for i, token in enumerate(content):
            answers[row, len(content) + i] = token
    return answers


def memorization_oracle(inputs: torch.Tensor, cfg) -> torch.Tensor:
    """At each key's last token, the table's value of the whole key (read back from its tokens)."""
    first_value = cfg.key_len * cfg.key_vocab
    table = fact_table(cfg.key_vocab**cfg.key_len, cfg.vocab_size - first_value, first_value, cfg.table_seed)
    answers = torch.zeros_like(inputs)
    for row, tokens in enumerate(inputs.tolist()):
        for start in range(0, len(tokens), cfg.key_len):
            fact = 0
            for j, token in enumerate(tokens[start : start + cfg.key_len]):
                fact = fact * cfg.key_vocab + token - j * cfg.key_vocab
            answers[row, start + cfg.key_len - 1] = table[fact]
    return answers


ORACLES: dict[str, Callable[[torch.Tensor, SequenceTaskConfig], torch.Tensor]] = {
    "noisy_recall": noisy_recall_oracle,
    "fuzzy_recall": fuzzy_recall_oracle,
    "selective_copy": selective_copy_oracle,
    "compression": compression_oracle,
    "memorization": memorization_oracle,
}


def answer_tokens(name: str, cfg) -> int:
    """How many tokens a target can be: a constant guess is right about once in this many."""
    if name == "noisy_recall":
        return (cfg.vocab_size - cfg.noise_vocab) // 2
    if name == "fuzzy_recall":
        return cfg.vocab_size - 1 - cfg.key_vocab
    if name == "compression":
        return cfg.vocab_size - compression.FIRST_CONTENT
    if name == "memorization":
        return cfg.vocab_size - cfg.key_len * cfg.key_vocab
    return cfg.vocab_size - FIRST_CONTENT


def labels_per_example(name: str, cfg) -> int:
    if name == "noisy_recall":
        return cfg.num_kv_pairs
    if name == "fuzzy_recall":
        return cfg.num_kv_pairs * cfg.v_len
    if name == "memorization":
        return cfg.seq_len // cfg.key_len
    return cfg.num_tokens  # selective_copy and compression


# -- every task


def test_the_tasks_are_registered_with_their_metric():
    for name in TASK_NAMES:
        assert name in TASKS
        task = get_task(name)
        assert task.name == name and task.metric == "accuracy" and task.higher_is_better
        assert (task.metric_optimum, task.metric_worst) == (1.0, 0.0)
        assert set(task.reference_baselines) <= set(builtin_baselines())
        assert task.generator_version == 1
        assert task.data_version(task.config()) == data_version(name)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_batches_have_the_configured_shape_and_dtype(name):
    task, cfg = get_task(name), config(name)
    batch = next(task.train_batches(cfg, seed=0, device=torch.device("cpu")))
    test = task.heldout(cfg)
    assert batch.inputs.shape == batch.targets.shape == (cfg.batch_size, cfg.seq_len)
    assert test.inputs.shape == test.targets.shape == (cfg.test_examples, cfg.seq_len)
    for tensor in (*batch, *test):
        assert tensor.dtype == torch.long
    for inputs in (batch.inputs, test.inputs):
        assert inputs.min() >= 0 and inputs.max() < cfg.vocab_size


@pytest.mark.parametrize("name", TASK_NAMES)
def test_targets_are_ignore_where_there_is_no_label(name):
    cfg = config(name)
    inputs, targets = heldout(name)
    labelled = targets != IGNORE
    assert (labelled.sum(dim=1) == labels_per_example(name, cfg)).all()
    assert ((targets[labelled] >= 0) & (targets[labelled] < cfg.vocab_size)).all()
    # Every label is what the oracle, which reads the inputs alone, says.
    assert torch.equal(ORACLES[name](inputs, cfg)[labelled], targets[labelled])


@pytest.mark.parametrize("name", TASK_NAMES)
def test_an_oracle_scores_the_optimum_and_a_constant_guess_near_chance(name):
    task, cfg = get_task(name), config(name, test_examples=1000)
    inputs, targets = task.heldout(cfg)
    oracle = 30.0 * torch.nn.functional.one_hot(ORACLES[name](inputs, cfg), cfg.vocab_size).float()
    assert task.score(oracle, targets, cfg)["accuracy"] == task.metric_optimum
    uniform = task.score(torch.zeros(*inputs.shape, cfg.vocab_size), targets, cfg)
    assert uniform["loss"] == pytest.approx(math.log(cfg.vocab_size))
    chance = 1 / answer_tokens(name, cfg)
    for token in range(cfg.vocab_size):  # the best constant guess, whichever token it is
        constant = torch.zeros(*inputs.shape, cfg.vocab_size)
        constant[..., token] = 1.0
        assert task.score(constant, targets, cfg)["accuracy"] < 1.5 * chance, token


@pytest.mark.parametrize("name", TASK_NAMES)
def test_the_held_out_set_is_fixed_and_independent_of_the_training_seed(name):
    task, cfg = get_task(name), config(name)
    assert torch.equal(task.heldout(cfg).inputs, task.heldout(cfg).inputs)
    train_batch = next(task.train_batches(cfg, seed=0, device=torch.device("cpu")))
    assert not torch.equal(train_batch.inputs, task.heldout(cfg).inputs[: cfg.batch_size])
    other_seed = next(task.train_batches(cfg, seed=1, device=torch.device("cpu")))
    assert not torch.equal(train_batch.inputs, other_seed.inputs)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_secret_seed_replaces_the_default_held_out_set_but_not_a_fixed_one(name):
    task = get_task(name)
    default, fixed = config(name), config(name, test_seed=7)
    assert not torch.equal(task.heldout(default, secret_seed=123).inputs, task.heldout(default).inputs)
    assert not torch.equal(
        task.heldout(default, secret_seed=123).inputs, task.heldout(default, secret_seed=124).inputs
    )
    assert torch.equal(task.heldout(fixed, secret_seed=123).inputs, task.heldout(fixed).inputs)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_probe_passes_a_built_in_mixer(name):
    task = get_task(name)
    for baseline in ("softmax_attention", "linear_attention"):
        verdict = check(builtin_baselines()[baseline], task, config(name))
        assert verdict.passed, [(p.name, p.reason) for p in verdict.failures()]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_sandboxed_check_and_training_never_tell_a_job_the_secret_seed(name, tmp_path):
    settings = {"steps": 4, "log_every": 2, "warmup_steps": 2, "test_examples": 64}
    secret = 987_654_321_123
    sandbox = Sandbox(ProcessBackend(), tmp_path / "jobs", Limits(timeout_s=300), heldout_seed=secret)
    candidate = vet(builtin_baselines()["linear_attention"], trusted=True)
    assert sandbox.check(candidate, RunSpec.resolve(name, settings)).passed  # the causal audit too
    result = sandbox.train(candidate, RunSpec.resolve(name, settings), job_id="fit")
    assert result.status == "ok" and result.task == name and result.metric == "accuracy"
    assert 0.0 <= result.value <= 1.0 and math.isfinite(result.metrics["loss"])
    assert result.data_version == data_version(name) == get_task(name).data_version(config(name))
    job_files = sorted((tmp_path / "jobs").glob("*/job/job.json"))
    assert {path.parent.parent.name for path in job_files} >= {"fit", "fit-predict", "fit-audit"}
    for path in job_files:
        spec = json.loads(path.read_text())
        assert "test_seed" not in spec["settings"] and str(secret) not in path.read_text()


# -- each task's own structure (compression's and memorization's: test_compression_memorization.py)


def test_noisy_recall_pairs_sit_among_noise_at_the_configured_rate():
    inputs, targets = generate_noisy_recall(500, 40, 8, 32, 4, 0.5, 0.01, torch.Generator().manual_seed(0))
    context = context_length(4, 0.5)
    assert context == 16
    head = inputs[:, :context]
    keys = (head >= 8) & (head < 24)
    values = head >= 24
    assert (keys.sum(dim=1) == 4).all() and (values.sum(dim=1) == 4).all()
    assert torch.equal(keys[:, :-1], values[:, 1:])  # a value always right after its key
    assert (inputs[(inputs < 8)].numel()) == 500 * 32 - 500 * 12  # the rest is noise: no filler
    # Pairs start anywhere in the context, not on a grid as in MQAR.
    starts = keys.float().mean(dim=0)
    assert (starts[:-1] > 0.1).all()
    assert (targets[:, :context] == IGNORE).all()
    with pytest.raises(ValueError, match="too few keys"):
        generate_noisy_recall(2, 16, 8, 64, 8, 0.5, 0.01, torch.Generator())
    with pytest.raises(ValueError, match="no room"):
        generate_noisy_recall(2, 40, 8, 18, 4, 0.5, 0.01, torch.Generator())


def test_fuzzy_recall_keys_are_distinct_whole_but_share_tokens():
    inputs, _ = generate_fuzzy_recall(500, 32, 4, 40, 4, 2, 2, torch.Generator().manual_seed(0))
    pairs = inputs[:, :16].view(500, 4, 4)
    keys, values = pairs[..., :2], pairs[..., 2:]
    assert ((keys >= 1) & (keys < 5)).all() and ((values >= 5) & (values < 32)).all()
    assert all(len({tuple(key) for key in row.tolist()}) == 4 for row in keys)
    first_tokens_repeat = [len(set(row[:, 0].tolist())) < 4 for row in keys]
    assert sum(first_tokens_repeat) > 400  # one token rarely tells a key: the whole key must
    assert (inputs[:, 16:][(inputs[:, 16:] == FILLER)].numel()) == 500 * 8
    with pytest.raises(ValueError, match="too few keys"):
        generate_fuzzy_recall(2, 32, 2, 64, 4, 2, 2, torch.Generator())
    with pytest.raises(ValueError, match="no room"):
        generate_fuzzy_recall(2, 32, 4, 31, 4, 2, 2, torch.Generator())


def test_selective_copy_content_is_scattered_and_copied_in_order():
    inputs, targets = generate_selective_copy(500, 16, 32, 8, torch.Generator().manual_seed(0))
    section = inputs[:, :24]
    assert ((section == BLANK) | (section >= FIRST_CONTENT)).all()
    assert ((section != BLANK).sum(dim=1) == 8).all()
    assert (inputs[:, 24:] == SEPARATOR).all()
    assert torch.equal(targets[:, 24:], section[section != BLANK].view(500, 8))
    # The content sits anywhere in the section, not in a fixed place.
    assert ((section != BLANK).float().mean(dim=0) > 0.15).all()
    with pytest.raises(ValueError, match="no content tokens"):
        generate_selective_copy(2, 2, 32, 8, torch.Generator())
    with pytest.raises(ValueError, match="no room"):
        generate_selective_copy(2, 16, 15, 8, torch.Generator())
