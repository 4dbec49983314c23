"""Scoring outside the sandbox: the prediction audit and the checks on returned logits."""

import os

import pytest
import torch

from discover.experiments.baselines import builtin_baselines
from discover.experiments.contract import load_mixer_class
from discover.experiments.tasks import get_task
from discover.experiments.tasks.base import predict
from discover.vetting.heldout import (
    HeldoutError,
    audit_inputs,
    audit_violation,
    check_audit_inputs,
    read_logits,
)

from .conftest import CANDIDATES

SETTINGS = {"d_model": 32, "n_layers": 1, "test_examples": 48, "batch_size": 16}


def audit(candidate, task_name="mqar"):
    """The audit verdict for a freshly initialised model of `candidate` on the task's held-out set."""
    task = get_task(task_name)
    cfg = task.config(SETTINGS if task_name == "mqar" else {"d_model": 32, "n_layers": 1, "eval_windows": 24})
    torch.manual_seed(0)
    model = task.build_model(load_mixer_class(candidate), cfg)
    inputs = task.heldout(cfg).inputs
    scrambled, cuts, order = audit_inputs(inputs, seed=3)
    logits = predict(model, inputs, cfg.batch_size, torch.device("cpu"))
    return audit_violation(
        logits, predict(model, scrambled, cfg.batch_size, torch.device("cpu")), cuts, order
    )


@pytest.mark.parametrize("name", ["softmax_attention", "gated_deltanet", "mamba2"])
def test_honest_models_pass_the_audit(name):
    assert audit(builtin_baselines()[name]) is None
    assert audit(builtin_baselines()[name], "lm") is None


@pytest.mark.parametrize("name", ["reads_future", "mixes_batch"])
def test_models_that_read_ahead_or_across_the_batch_fail_it(name):
    violation = audit(CANDIDATES / f"{name}.py")
    assert violation is not None and "the predictions read the future or the batch" in violation


@pytest.mark.parametrize(
    ("candidate", "causal"),
    [(builtin_baselines()["gated_deltanet"], True), (CANDIDATES / "reads_future.py", False)],
)
def test_a_check_jobs_one_batch_audit_tells_causal_models_apart(candidate, causal):
    """A check job predicts originals and scrambled copies in one secret order, in one process."""
    task = get_task("mqar")
    cfg = task.config(SETTINGS)
    torch.manual_seed(0)
    model = task.build_model(load_mixer_class(candidate), cfg)
    sample = next(task.train_batches(cfg, 0, torch.device("cpu"))).inputs[:8]
    mixed, judge = check_audit_inputs(sample, seed=11)
    assert mixed.shape == (16, sample.shape[1])
    assert not torch.equal(mixed[:8], sample)  # the originals are not simply first
    violation = judge(predict(model, mixed, cfg.batch_size, torch.device("cpu")))
    assert (violation is None) == causal, violation


def test_the_audit_keeps_each_prefix_and_changes_each_tail():
    inputs = torch.arange(6 * 10).reshape(6, 10)
    scrambled, cuts, order = audit_inputs(inputs, seed=0)
    back = scrambled[order.argsort()]
    assert sorted(order.tolist()) == list(range(6)) and order.tolist() != list(range(6))
    for row, cut in enumerate(cuts.tolist()):
        assert 1 <= cut < 10
        assert torch.equal(back[row, :cut], inputs[row, :cut])
        assert not torch.equal(back[row, cut:], inputs[row, cut:])  # a tail from another row
    assert torch.equal(audit_inputs(inputs, seed=0)[0], scrambled)  # deterministic per seed


def test_returned_logits_are_checked(tmp_path):
    path = tmp_path / "logits.pt"
    with pytest.raises(HeldoutError, match="wrote no logits"):
        read_logits(path, (4, 8, -1), 1 << 20)
    torch.save({"accuracy": torch.tensor(1.0)}, path)
    with pytest.raises(HeldoutError, match="does not hold a plain tensor"):
        read_logits(path, (4, 8, -1), 1 << 20)
    torch.save(torch.zeros(4, 7, 32), path)
    with pytest.raises(HeldoutError, match=r"shape \(4, 7, 32\)"):
        read_logits(path, (4, 8, -1), 1 << 20)
    torch.save(torch.zeros(4, 8, 32, dtype=torch.float64), path)
    with pytest.raises(HeldoutError, match="float64"):
        read_logits(path, (4, 8, -1), 1 << 20)
    torch.save(torch.zeros(4, 8, 32), path)
    assert read_logits(path, (4, 8, -1), 1 << 20).shape == (4, 8, 32)
    with pytest.raises(HeldoutError, match="larger than"):
        read_logits(path, (4, 8, -1), 100)
    path.write_bytes(b"not a torch file")
    with pytest.raises(HeldoutError, match="not a saved tensor"):
        read_logits(path, (4, 8, -1), 1 << 20)
    link = tmp_path / "link.pt"
    os.symlink(path, link)
    with pytest.raises(HeldoutError, match="wrote no logits"):
        read_logits(link, (4, 8, -1), 1 << 20)
