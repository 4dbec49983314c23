"""Do zero-cost signals, taken at initialisation, rank designs the way screening does?

    python -m benchmarks.zero_cost [--designs 400] [--draws 2000]

Issue 24's optional item: a signal computed before any training step could be an extra input of
the surrogate, but only if its rank correlation with screening fitness is above 0.3. Each signal
here is computed from one training batch of MQAR at the search benchmark's settings, seed 0, on
the untrained model:

- log_params: the log of the parameter count, the trivial signal any other must beat;
- grad_norm: the L2 norm of the loss's gradient over all parameters;
- snip: the sum over parameters of |weight x gradient| (Lee et al. 2019, as a whole-net score);
- jacob_cov: how uncorrelated the examples' Jacobians of the final states with respect to their
  input embeddings are (Mellor et al. 2020), from the eigenvalues of their correlation matrix;
- naswot: the log-determinant of the Hamming-similarity kernel of the examples' sign patterns
  of the final states (Mellor et al. 2021);

and, for comparison, one that is cheap but not zero-cost: the drop of the training loss over ten
steps at the task's learning rate (2.5% of a screen's 400).

The designs are those `benchmarks/search.py` screened (its cache, `benchmarks/search.json`): each
design's mean fitness and mean held-out accuracy over the studies that screened it. The seven
built-in baselines are trained here once at the same settings for their accuracy (fitness is
relative to a study's reference, so they have none). Spearman's rho with a percentile bootstrap
interval over designs goes to the `zero-cost` section of RESULTS.md. A
negative correlation would serve as well as a positive one, so size is what is judged.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from benchmarks.results import machine, write_section
from benchmarks.search import CACHE, SETTINGS
from discover.agents.grammar import render
from discover.agents.proposers.grammar_search import genome_by_code_hash
from discover.experiments.backbone import SequenceModel
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import get_task
from discover.experiments.tasks.base import Batch
from discover.experiments.zero_cost import first_batch, naswot, untrained_model

TASK = get_task("mqar")
KEEP_ABOVE = 0.3  # the bar for a signal to become a surrogate input
TRAINING_STEPS = 10


def measured_designs() -> dict[str, tuple[float, float]]:
    """code hash -> (mean screening fitness, mean held-out accuracy) over the cached studies."""
    screens = defaultdict(list)
    for study in json.loads(CACHE.read_text()).values():
        for design, fitness, accuracy in study.get("screens", []):
            screens[design].append((fitness, accuracy))
    return {
        design: (float(np.mean([f for f, _ in runs])), float(np.mean([a for _, a in runs])))
        for design, runs in screens.items()
    }


def gradients(model: nn.Module, batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model.zero_grad()
    TASK.loss(model, batch).backward()
    return [(p.detach(), p.grad.detach()) for p in model.parameters() if p.grad is not None]


def grad_norm(model: SequenceModel, batch: Batch) -> float:
    return math.sqrt(sum(float((g**2).sum()) for _, g in gradients(model, batch)))


def snip(model: SequenceModel, batch: Batch) -> float:
    return sum(float((p * g).abs().sum()) for p, g in gradients(model, batch))


def final_states_and_embeddings(
    model: SequenceModel, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    embeddings = model.embed(tokens).detach().requires_grad_(True)
    x = embeddings
    for block in model.blocks:
        x = block(x)
    return model.final_norm(x), embeddings


def jacob_cov(model: SequenceModel, batch: Batch) -> float:
    states, embeddings = final_states_and_embeddings(model, batch.inputs)
    (jacobian,) = torch.autograd.grad(states.sum(), embeddings)
    correlation = np.corrcoef(jacobian.flatten(1).double().numpy())
    eigenvalues = np.linalg.eigvalsh(np.nan_to_num(correlation))
    k = 1e-5
    return float(-np.sum(np.log(eigenvalues + k) + 1.0 / (eigenvalues + k)))


def log_params(model: SequenceModel, batch: Batch) -> float:
    return math.log(sum(p.numel() for p in model.parameters()))


def ten_step_loss_drop(model: SequenceModel, batch: Batch) -> float:
    """Not zero-cost: the loss drop over a few steps on the same batch, for comparison."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(TASK.config(SETTINGS).lr))
    first = last = float("nan")
    for step in range(TRAINING_STEPS + 1):
        loss = TASK.loss(model, batch)
        first = loss.item() if step == 0 else first
        last = loss.item()
        if step < TRAINING_STEPS:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return first - last


SIGNALS: dict[str, Callable[[SequenceModel, Batch], float]] = {
    "log_params": log_params,
    "grad_norm": grad_norm,
    "snip": snip,
    "jacob_cov": jacob_cov,
    "naswot": lambda model, batch: naswot(model, batch.inputs),
    "ten-step loss drop (not zero-cost)": ten_step_loss_drop,
}


def signals_of(candidate: Path, spec: RunSpec, batch: Batch) -> dict[str, float]:
    """Every signal on its own fresh copy of the untrained model (a signal may change it)."""
    values = {}
    for name, signal in SIGNALS.items():
        try:
            values[name] = signal(untrained_model(candidate, spec), batch)
        except (RuntimeError, ValueError, np.linalg.LinAlgError):  # a design a signal cannot read
            values[name] = math.nan
    return values


def rho_with_interval(
    signal: list[float], target: list[float], draws: int
) -> tuple[float, float, float, int]:
    pairs = np.array([(s, t) for s, t in zip(signal, target, strict=True) if math.isfinite(s)])
    rho = float(spearmanr(pairs[:, 0], pairs[:, 1]).statistic)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(draws):
        sample = pairs[rng.integers(0, len(pairs), len(pairs))]
        value = spearmanr(sample[:, 0], sample[:, 1]).statistic
        if math.isfinite(value):
            boot.append(value)
    low, high = np.quantile(boot, [0.025, 0.975])
    return rho, float(low), float(high), len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=400, help="at most this many cached designs")
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap draws")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.monotonic()
    spec = RunSpec.resolve(TASK, SETTINGS)
    cfg, batch = spec.config, first_batch(spec)
    designs = dict(sorted(measured_designs().items())[: args.designs])
    grammar = genome_by_code_hash()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        for design, (fitness, accuracy) in designs.items():
            candidate = Path(folder) / f"{design}.py"
            candidate.write_text(render(grammar[design]))
            rows.append({"fitness": fitness, "accuracy": accuracy, **signals_of(candidate, spec, batch)})
    for name, candidate in builtin_baselines().items():
        accuracy = train(candidate, TASK, cfg, seed=0).value
        rows.append(
            {
                "fitness": math.nan,
                "accuracy": accuracy,
                "baseline": name,
                **signals_of(candidate, spec, batch),
            }
        )
    grammar_rows = [row for row in rows if "baseline" not in row]

    lines = []
    for name in SIGNALS:
        cells = [name]
        for target, subset in (("fitness", grammar_rows), ("accuracy", rows)):
            rho, low, high, n = rho_with_interval(
                [row[name] for row in subset], [row[target] for row in subset], args.draws
            )
            cells.append(f"{rho:+.2f} [{low:+.2f}, {high:+.2f}] (n={n})")
            if target == "fitness":  # either sign: the trees of the surrogate read order, not direction
                kept = low > KEEP_ABOVE or high < -KEEP_ABOVE
                cells.append("yes" if kept else ("maybe" if abs(rho) > KEEP_ABOVE else "no"))
        lines.append("| " + " | ".join(cells) + " |")
    body = (
        "## Zero-cost signals against screening fitness (`benchmarks/zero_cost.py`)\n\n"
        f"Machine: {machine()}. {len(grammar_rows)} grammar designs the search benchmark screened "
        f"(MQAR {SETTINGS}; each design's mean over the studies that screened it) and the "
        f"{len(rows) - len(grammar_rows)} built-in baselines (accuracy only, trained here once). Each "
        "signal is taken on the untrained model, seed 0, from one training batch; Spearman's rho "
        "with a 95% percentile bootstrap interval over designs. Kept as a surrogate input: 'yes' "
        f"only if the whole interval lies beyond {KEEP_ABOVE} in size (either sign: a tree ensemble "
        "reads order, not direction); 'maybe' if only the estimate does.\n\n"
        "| signal | rho with screening fitness (grammar designs) | kept | rho with held-out accuracy "
        "(designs and baselines) |\n|---|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\nRun time: {time.monotonic() - began:,.0f} s, one thread."
    )
    print(body)
    write_section("zero-cost", body)


if __name__ == "__main__":
    main()
