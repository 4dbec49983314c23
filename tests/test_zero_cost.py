"""NASWOT, the zero-cost signal the surrogate may read: the kernel against a hand-computed case, a
real design's score, reproducible and telling designs apart, and the grammar's cached table of it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from discover.agents.grammar import CLASSICS, render, space
from discover.agents.proposers.signals import space_naswot, table_path
from discover.experiments.contract import code_hash
from discover.experiments.files import write_json_atomic
from discover.experiments.runspec import RunSpec
from discover.experiments.zero_cost import naswot, naswot_of


class FixedStates(nn.Module):
    """A stand-in with the one method `naswot` reads: given final states, whatever the tokens."""

    def __init__(self, states: list[list[float]]) -> None:
        super().__init__()
        self.states = torch.tensor(states)[:, None, :]  # [examples, time 1, width]

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.states


def test_examples_that_look_alike_score_lower():
    # Codes (1, 0) and (0, 1) agree nowhere: the kernel is 2 I, log det = log 4.
    assert naswot(FixedStates([[0.5, -1.0], [-0.5, 2.0]]), torch.zeros(2, 1)) == pytest.approx(math.log(4))
    # Codes (1, 0) and (1, 1) agree on one position of two: [[2, 1], [1, 2]], log det = log 3.
    assert naswot(FixedStates([[0.5, -1.0], [0.5, 2.0]]), torch.zeros(2, 1)) == pytest.approx(math.log(3))
    # Identical codes: a singular kernel, the lowest score there is.
    assert naswot(FixedStates([[0.5, -1.0], [0.7, -2.0]]), torch.zeros(2, 1)) == -math.inf


def test_a_designs_score_is_reproducible_and_tells_designs_apart(tmp_path):
    spec = RunSpec.resolve("mqar", {"d_model": 32, "seq_len": 64, "num_kv_pairs": 16, "vocab_size": 64})
    scores = {}
    for name in ("linear attention", "Gated DeltaNet"):
        candidate = tmp_path / f"{name.replace(' ', '_')}.py"
        candidate.write_text(render(CLASSICS[name]))
        scores[name] = naswot_of(candidate, spec)
        assert naswot_of(candidate, spec) == scores[name] and math.isfinite(scores[name])
    assert scores["linear attention"] != scores["Gated DeltaNet"]


def test_the_grammar_table_computes_only_what_the_cache_lacks_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCOVER_CACHE_DIR", str(tmp_path))
    spec = RunSpec.resolve("mqar", {"d_model": 16, "seq_len": 32, "num_kv_pairs": 4})
    hashes = [code_hash(render(genome)) for genome in space()]
    missing = {hashes[0], hashes[-1]}  # any two designs
    table_path(spec).parent.mkdir(parents=True)
    write_json_atomic(table_path(spec), {design: 0.0 for design in hashes if design not in missing})
    values = space_naswot(spec)
    kept = json.loads(table_path(spec).read_text())
    assert len(kept) == len(space()) and len(values) == len(space())
    assert all(math.isfinite(kept[design]) and kept[design] != 0.0 for design in missing)
    assert [values[0], values[-1]] == [kept[hashes[0]], kept[hashes[-1]]]
