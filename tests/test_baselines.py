"""Every built-in baseline is a valid candidate whose fast path computes its reference function."""

import pytest
import torch

from discover.experiments.baselines import builtin_baselines
from discover.experiments.contract import load_mixer_class

BASELINES = builtin_baselines()
EXPECTED = {
    "softmax_attention",
    "linear_attention",
    "retention",
    "gla",
    "deltanet",
    "gated_deltanet",
    "mamba2",
}


def test_zoo_has_the_promised_baselines():
    assert set(BASELINES) >= EXPECTED


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_fast_path_equals_reference(name):
    torch.manual_seed(0)
    mixer = load_mixer_class(BASELINES[name])(d_model=32, num_heads=4).double()
    # A length that is not a multiple of any chunk size exercises the padding path.
    x = torch.randn(2, 77, 32, dtype=torch.double)
    fast = mixer(x)
    reference = mixer.forward_reference(x)
    assert fast.shape == x.shape
    torch.testing.assert_close(fast, reference, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_fast_path_gradients_equal_reference(name):
    torch.manual_seed(1)
    # chunk_size 16 with T=40 puts gradients through two chunk boundaries and a padded tail.
    mixer = load_mixer_class(BASELINES[name])(d_model=16, num_heads=2, chunk_size=16).double()
    x = torch.randn(1, 40, 16, dtype=torch.double, requires_grad=True)
    (grad_fast,) = torch.autograd.grad(mixer(x).square().sum(), x)
    (grad_ref,) = torch.autograd.grad(mixer.forward_reference(x).square().sum(), x)
    torch.testing.assert_close(grad_fast, grad_ref, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_fast_path_under_bf16_autocast_tracks_float32(name):
    """The harness trains on GPUs under bf16 autocast; the CPU has the same autocast, so the
    baselines' float32 islands (recurrent state, decays, the blocks with autocast off) run here."""
    torch.manual_seed(2)
    mixer = load_mixer_class(BASELINES[name])(d_model=32, num_heads=4, chunk_size=16)
    x = torch.randn(2, 70, 32, requires_grad=True)
    exact = mixer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = mixer(x)
    (grad,) = torch.autograd.grad(mixed.float().square().sum(), x)
    assert mixed.shape == x.shape and torch.isfinite(grad).all()
    # bf16 keeps 8 bits of mantissa: a relative error of a few percent, not a broken recurrence.
    error = (mixed.float() - exact).norm() / exact.norm()
    assert error < 0.05, f"{name}: relative error {error:.3f} under bf16 autocast"
