"""The MAD suite's compression and memorization tasks: their data, their secret held-out sets, their
scoring (an oracle scores perfectly, a constant guess near chance), the compression model that the
harness owns around the candidate, and one short sandboxed check and training each."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
import torch

from discover.experiments.baselines import builtin_baselines
from discover.experiments.probes import check
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import TASKS, get_task
from discover.experiments.tasks.base import IGNORE, SequenceTaskConfig, TaskConfigError
from discover.experiments.tasks.compression import (
    BLANK,
    FIRST_CONTENT,
    MARKER,
    CompressionModel,
    generate_compression,
)
from discover.experiments.tasks.memorization import fact_table, generate_memorization
from discover.sandbox.base import Limits
from discover.sandbox.process import ProcessBackend
from discover.sandbox.runner import Sandbox
from discover.vetting.candidate import vet

TASK_NAMES = ["compression", "memorization"]
SMALL = {"test_examples": 200}


def config(name: str, **overrides) -> SequenceTaskConfig:
    return get_task(name).config({**SMALL, **overrides})


def heldout(name: str, **overrides):
    task = get_task(name)
    return task.heldout(task.config({**SMALL, **overrides}))


# -- oracles: the right answer at every position


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
    "compression": compression_oracle,
    "memorization": memorization_oracle,
}


def answer_tokens(name: str, cfg) -> int:
    """How many tokens a target can be: a constant guess is right about once in this many."""
    if name == "compression":
        return cfg.vocab_size - FIRST_CONTENT
    return cfg.vocab_size - cfg.key_len * cfg.key_vocab


def labels_per_example(name: str, cfg) -> int:
    if name == "compression":
        return cfg.num_tokens
    return cfg.seq_len // cfg.key_len


# -- both tasks


def test_the_tasks_are_registered_with_their_metric():
    for name in TASK_NAMES:
        assert name in TASKS
        task = get_task(name)
        assert task.name == name and task.metric == "accuracy" and task.higher_is_better
        assert (task.metric_optimum, task.metric_worst) == (1.0, 0.0)
        assert set(task.reference_baselines) <= set(builtin_baselines())
        assert task.generator_version == 1
    assert get_task("compression").data_version(config("compression")) == "generated:compression/v1"
    memorization = get_task("memorization")
    assert memorization.data_version(config("memorization")) == "generated:memorization/v1/table0"
    assert memorization.data_version(config("memorization", table_seed=3)).endswith("/table3")


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
    assert result.data_version == get_task(name).data_version(config(name))
    job_files = sorted((tmp_path / "jobs").glob("*/job/job.json"))
    assert {path.parent.parent.name for path in job_files} >= {"fit", "fit-predict", "fit-audit"}
    for path in job_files:
        spec = json.loads(path.read_text())
        assert "test_seed" not in spec["settings"] and str(secret) not in path.read_text()


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
