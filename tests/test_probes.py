"""`check` passes every baseline and names the right probe for each broken candidate; FLOP counts."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from discover.experiments.baselines import builtin_baselines
from discover.experiments.contract import load_mixer_class
from discover.experiments.measure import matmul_flops
from discover.experiments.probes import check
from discover.experiments.tasks import get_task

from .conftest import CANDIDATES

MQAR = get_task("mqar")


def verdict(path, **settings):
    return check(path, MQAR, MQAR.config(settings))


@pytest.mark.parametrize("name", sorted(builtin_baselines()))
def test_every_baseline_passes(name):
    result = verdict(builtin_baselines()[name])
    assert result.passed, result.failures()
    assert result.functional_hash and result.mixer_params and result.complexity_exponent


@pytest.mark.parametrize(
    ("candidate", "probe", "words"),
    [
        ("reads_future.py", "causality", "reads future tokens"),
        ("mixes_batch.py", "batch_independence", "across the batch"),
        ("wrong_shape.py", "forward_backward", "output shape"),
        ("syntax_error.py", "import", "syntax error at line 3"),
        ("no_mixer.py", "import", "no class named `Mixer`"),
        ("raises_at_import.py", "import", "RuntimeError: config file not found"),
    ],
)
def test_broken_candidate_fails_the_right_probe(candidate, probe, words):
    result = verdict(CANDIDATES / candidate)
    assert not result.passed
    first = result.failures()[0]
    assert first.name == probe and words in first.reason


def test_quadratic_cost_fails_only_under_a_subquadratic_task():
    # The hidden-quadratic candidate uses broadcasting, not matmuls: the element counter sees it.
    for candidate in (CANDIDATES / "quadratic_hidden.py", builtin_baselines()["softmax_attention"]):
        assert verdict(candidate).passed
        strict = verdict(candidate, subquadratic=True)
        assert [p.name for p in strict.failures()] == ["complexity"]
        assert strict.complexity_exponent > 1.7
    linear = verdict(builtin_baselines()["gated_deltanet"], subquadratic=True)
    assert linear.passed and linear.complexity_exponent < 1.2


def test_parameter_bound_is_enforced():
    result = verdict(builtin_baselines()["softmax_attention"], max_mixer_params_factor=1.0)
    assert [p.name for p in result.failures()] == ["parameters"]


def test_functional_hash_ignores_names_but_not_function(tmp_path):
    source = (CANDIDATES / "weak_short_conv.py").read_text()
    renamed = source.replace("value", "signal").replace("self.conv", "self.depthwise")
    (tmp_path / "renamed.py").write_text(renamed)
    changed = source.replace("F.silu(gate)", "F.sigmoid(gate)")
    (tmp_path / "changed.py").write_text(changed)
    original = verdict(CANDIDATES / "weak_short_conv.py")
    assert verdict(tmp_path / "renamed.py").functional_hash == original.functional_hash
    assert verdict(tmp_path / "changed.py").functional_hash != original.functional_hash
    assert verdict(tmp_path / "renamed.py").code_hash != original.code_hash


@pytest.mark.parametrize("name", ["softmax_attention", "gated_deltanet", "mamba2"])
def test_flop_count_matches_torchs_flop_counter(name):
    # discover sums torch's FLOP formulas in a mode of its own (no dynamo import, ~1 s per check
    # job); the totals must stay what torch's FlopCounterMode reports.
    task = get_task("mqar")
    cfg = task.config()
    model = task.build_model(load_mixer_class(builtin_baselines()[name]), cfg)
    inputs = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as torchs:
        model(inputs)
    assert matmul_flops(lambda: model(inputs)) == torchs.get_total_flops() > 0
