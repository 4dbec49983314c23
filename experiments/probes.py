"""Probes: catch a broken or cheating candidate before any training time is spent.

`check(candidate, task, cfg)` runs each probe in order and answers a `Verdict` listing every probe
with pass/fail and a reason a person or an LLM can act on. A probe that cannot even start (the file
does not import, `Mixer` cannot be built) ends the check there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel
from torch import nn

from discover.experiments.contract import CandidateError, code_hash, describe_error, load_mixer_class
from discover.experiments.measure import elements_written, growth_exponent, matmul_flops
from discover.experiments.tasks.base import SequenceTask, SequenceTaskConfig

SUBQUADRATIC_BOUND = 1.5  # largest cost-growth exponent a sub-quadratic task accepts
COMPLEXITY_LENGTHS = (256, 512, 1024, 2048)


class ProbeResult(BaseModel):
    name: str
    passed: bool
    required: bool = True
    reason: str


class Verdict(BaseModel):
    candidate: str
    task: str
    passed: bool
    probes: list[ProbeResult]
    code_hash: str | None = None
    functional_hash: str | None = None
    mixer_params: int | None = None
    complexity_exponent: float | None = None

    def failures(self) -> list[ProbeResult]:
        return [p for p in self.probes if p.required and not p.passed]


@dataclass
class Subject:
    """What the probes look at: the candidate's class, a built instance, and the task settings."""

    mixer_class: type[nn.Module]
    mixer: nn.Module
    task: SequenceTask
    cfg: SequenceTaskConfig
    verdict: Verdict


def check(candidate: Path, task: SequenceTask, cfg: SequenceTaskConfig) -> Verdict:
    return load_and_check(candidate, task, cfg)[0]


def load_and_check(
    candidate: Path, task: SequenceTask, cfg: SequenceTaskConfig
) -> tuple[Verdict, type[nn.Module] | None]:
    """The verdict, and the candidate's Mixer class when it imported (the check job builds the
    audited model from it, rather than running the file's code a second time)."""
    verdict = Verdict(candidate=candidate.stem, task=task.name, passed=False, probes=[])
    try:
        verdict.code_hash = code_hash(candidate.read_text())
        mixer_class = load_mixer_class(candidate)
    except (CandidateError, OSError, UnicodeDecodeError) as exc:
        verdict.probes.append(ProbeResult(name="import", passed=False, reason=str(exc)))
        return verdict, None
    verdict.probes.append(ProbeResult(name="import", passed=True, reason="defines a Mixer class"))

    try:
        torch.manual_seed(0)
        mixer = mixer_class(d_model=cfg.d_model, num_heads=cfg.num_heads)
    except Exception as exc:
        reason = f"Mixer(d_model={cfg.d_model}, num_heads={cfg.num_heads}) raised {describe_error(exc)}"
        verdict.probes.append(ProbeResult(name="construct", passed=False, reason=reason))
        return verdict, mixer_class
    verdict.probes.append(ProbeResult(name="construct", passed=True, reason="builds with the task's sizes"))

    subject = Subject(mixer_class, mixer, task, cfg, verdict)
    for probe in PROBES:
        try:
            result = probe(subject)
        except Exception as exc:
            result = ProbeResult(name=probe.__name__, passed=False, reason=f"raised {describe_error(exc)}")
        verdict.probes.append(result)
        if probe is forward_backward and not result.passed:
            break  # every later probe needs a working forward pass
    verdict.passed = not verdict.failures()
    return verdict, mixer_class


def forward_backward(s: Subject) -> ProbeResult:
    x = torch.randn(2, s.cfg.seq_len, s.cfg.d_model, requires_grad=True)
    y = s.mixer(x)
    if type(y) is not torch.Tensor:  # a subclass could carry __torch_function__ overrides
        return _fail("forward_backward", f"forward returned {type(y).__name__}, expected a plain tensor")
    if y.shape != x.shape:
        return _fail("forward_backward", f"output shape {tuple(y.shape)} != input shape {tuple(x.shape)}")
    if not torch.isfinite(y).all():
        return _fail("forward_backward", "output has NaN or inf for a standard-normal input")
    y.square().mean().backward()
    bad = [
        name for name, p in s.mixer.named_parameters() if p.grad is not None and not p.grad.isfinite().all()
    ]
    if x.grad is None or not x.grad.isfinite().all() or bad:
        where = ", ".join(bad[:3]) or "the input"
        return _fail("forward_backward", f"gradient has NaN or inf in {where}")
    s.mixer.zero_grad(set_to_none=True)
    return ProbeResult(name="forward_backward", passed=True, reason="shape kept, output and gradients finite")


def causality(s: Subject) -> ProbeResult:
    """Change only positions after t; outputs at positions <= t must not move."""
    T = s.cfg.seq_len
    x = torch.randn(2, T, s.cfg.d_model)
    base = _seeded(s.mixer, x)
    for t in sorted({0, T // 3, T // 2, T - 2}):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])
        moved = _max_change(base[:, : t + 1], _seeded(s.mixer, changed)[:, : t + 1])
        if moved is not None:
            return _fail(
                "causality",
                f"output at positions <= {t} changed by {moved:.3g} when only positions > {t} changed: "
                "the mixer reads future tokens (mask or shift the time axis so t sees only <= t)",
            )

    model = s.task.build_model(s.mixer_class, s.cfg)
    tokens = torch.randint(0, s.cfg.vocab_size, (2, T))
    base_logits = _seeded(model, tokens)
    t = T // 2
    changed = tokens.clone()
    changed[:, t + 1 :] = torch.randint(0, s.cfg.vocab_size, changed[:, t + 1 :].shape)
    moved = _max_change(base_logits[:, : t + 1], _seeded(model, changed)[:, : t + 1])
    if moved is not None:
        return _fail("causality", f"the full model's logits at positions <= {t} depend on later tokens")
    return ProbeResult(name="causality", passed=True, reason="no output depends on a later position")


def batch_independence(s: Subject) -> ProbeResult:
    """Replace the other samples of a batch; the first sample's output must not move."""
    x = torch.randn(3, s.cfg.seq_len, s.cfg.d_model)
    others_changed = x.clone()
    others_changed[1:] = torch.randn_like(others_changed[1:])
    moved = _max_change(_seeded(s.mixer, x)[0], _seeded(s.mixer, others_changed)[0])
    if moved is not None:
        return _fail(
            "batch_independence",
            f"sample 0's output changed by {moved:.3g} when only the other samples changed: "
            "the mixer mixes information across the batch (no reductions over dim 0, no BatchNorm)",
        )
    return ProbeResult(name="batch_independence", passed=True, reason="samples do not influence each other")


def complexity(s: Subject) -> ProbeResult:
    """How matrix-product FLOPs and written elements grow with sequence length."""
    mixer = s.mixer.eval()
    flops, elements = [], []
    with torch.no_grad():
        for length in COMPLEXITY_LENGTHS:
            x = torch.randn(1, length, s.cfg.d_model)
            flops.append(matmul_flops(lambda x=x: mixer(x)))
            elements.append(elements_written(lambda x=x: mixer(x)))
    mixer.train()
    exponent = max(growth_exponent(COMPLEXITY_LENGTHS, flops), growth_exponent(COMPLEXITY_LENGTHS, elements))
    s.verdict.complexity_exponent = round(exponent, 3)
    growth = (
        f"cost grows as time^{exponent:.2f} over lengths {COMPLEXITY_LENGTHS[0]}-{COMPLEXITY_LENGTHS[-1]}"
    )
    if s.cfg.subquadratic and exponent > SUBQUADRATIC_BOUND:
        reason = f"{growth}; this task requires sub-quadratic cost (exponent <= {SUBQUADRATIC_BOUND})"
        return _fail("complexity", reason)
    return ProbeResult(name="complexity", passed=True, required=s.cfg.subquadratic, reason=growth)


def parameters(s: Subject) -> ProbeResult:
    count = sum(p.numel() for p in s.mixer.parameters())
    s.verdict.mixer_params = count
    limit = int(s.cfg.max_mixer_params_factor * s.cfg.d_model**2)
    if count == 0:
        return _fail("parameters", "the mixer has no trainable parameters")
    if count > limit:
        factor = s.cfg.max_mixer_params_factor
        reason = f"{count:,} mixer parameters exceed the task's limit of {limit:,} ({factor} * d_model^2)"
        return _fail("parameters", reason)
    return ProbeResult(name="parameters", passed=True, reason=f"{count:,} mixer parameters (limit {limit:,})")


def functional_hash(s: Subject) -> ProbeResult:
    """Hash of the outputs on a fixed input under a fixed init seed: equal functions hash alike,
    whatever their variable names. Computed in float64 where the candidate allows it, so rounding
    to 6 significant digits is far above the noise of reordered arithmetic."""
    digits = 0
    for dtype, precision in ((torch.float64, 6), (torch.float32, 3)):
        try:
            torch.manual_seed(0)
            mixer = s.mixer_class(d_model=s.cfg.d_model, num_heads=s.cfg.num_heads).to(dtype).eval()
            x = torch.randn(2, 48, s.cfg.d_model, generator=torch.Generator().manual_seed(1234)).to(dtype)
            with torch.no_grad():
                y = mixer(x)
            digits = precision
            break
        except Exception:
            continue
    else:
        return ProbeResult(name="functional_hash", passed=False, required=False, reason="could not evaluate")
    scaled = y / y.abs().max().clamp_min(1e-12)
    rounded = torch.round(scaled.double() * 10**digits).to(torch.int64)
    s.verdict.functional_hash = hashlib.sha256(rounded.numpy().tobytes()).hexdigest()[:16]
    return ProbeResult(name="functional_hash", passed=True, required=False, reason=s.verdict.functional_hash)


PROBES: tuple[Callable[[Subject], ProbeResult], ...] = (
    forward_backward,
    causality,
    batch_independence,
    complexity,
    parameters,
    functional_hash,
)


def _seeded(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # Same RNG state for every call, so dropout draws the same masks and comparisons stay exact.
    torch.manual_seed(7)
    with torch.no_grad():
        return module(x)


def _max_change(before: torch.Tensor, after: torch.Tensor) -> float | None:
    """The largest change, or None when it is within float32 noise."""
    change = (after - before).abs().max().item()
    tolerance = 1e-4 * (1.0 + before.abs().max().item())
    return change if change > tolerance or change != change else None


def _fail(name: str, reason: str) -> ProbeResult:
    return ProbeResult(name=name, passed=False, reason=reason)
