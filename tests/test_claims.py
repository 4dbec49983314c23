"""Claims a reviewer can trust: the one test that decides them keeps its false-positive rate at
the seeds a study can afford, Benjamini-Hochberg controls the study's false discoveries, and a real
verification (the design and the best baseline trained on the same seeds, in the sandbox) claims
a design known to be better and does not claim a copy of the baseline."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats

from discover.agents.claims import refresh_q_values
from discover.agents.compose import compose_study
from discover.agents.config import ConfigError, StudyConfig, load_config
from discover.agents.graph import RECHECK_SEED_OFFSET, probe, recheck, replicate, verify
from discover.agents.record import StudyRecord, open_knowledge_base
from discover.agents.runs import train_and_record
from discover.agents.statistics import ALPHA, compare, q_values
from discover.agents.status import study_status
from discover.agents.study_baselines import train_baselines
from discover.experiments.baselines import builtin_baselines
from discover.knowledge_base.schema import Run, Verification
from discover.report.data import load_study, slug
from discover.report.site import build_report

from .conftest import discover
from .test_default_study import assert_wins_only_from_verifications

TRIALS = 4000


def false_positive_rate(n: int, noise, rng: np.random.Generator) -> float:
    return sum(compare(noise(rng, n), noise(rng, n)).beats for _ in range(TRIALS)) / TRIALS


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize(
    "noise",
    [lambda rng, n: rng.normal(size=n), lambda rng, n: rng.standard_t(2, size=n)],
    ids=["gaussian", "heavy-tailed"],
)
def test_a_design_no_better_than_its_baseline_is_rarely_claimed(n, noise):
    rate = false_positive_rate(n, noise, np.random.default_rng(n))
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / TRIALS), rate  # at most alpha, within MC error


def test_a_clearly_better_design_is_claimed_and_a_worse_one_never():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(1000, 5))  # what a seed does to both designs alike
    better = [compare(row + 2 + rng.normal(size=5) * 0.5, row).beats for row in shared]
    worse = [compare(row - 2 + rng.normal(size=5) * 0.5, row).beats for row in shared]
    assert np.mean(better) > 0.95 and not any(worse)


def test_comparisons_need_pairs_of_finite_values():
    with pytest.raises(ValueError, match="pairs"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        compare([1.0], [0.0])
    with pytest.raises(ValueError, match="finite"):
        compare([1.0, math.nan], [0.0, 0.0])
    assert not compare([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]).beats  # identical runs claim nothing


def test_q_values_are_benjamini_hochberg():
    p = [0.001, 0.04, 0.03, 0.2, 0.012, 0.5]
    assert q_values(p) == pytest.approx(list(stats.false_discovery_control(p, method="bh")))
    assert q_values([]) == []


# ----------------------------------------------------------------------------- a real verification

STUDY = """\
name = "claims"
task = "lm"
proposer = "evolution"
sandbox = "bwrap"
baselines = ["linear_attention"]
[settings]
steps = 80
seq_len = 64
eval_windows = 32
warmup_steps = 10
log_every = 40
[screen]
settings = { steps = 40 }
[promotion]
seeds = 3
[limits]
timeout_s = 300
memory_mb = 4096
"""


@pytest.fixture
def study(tmp_path, bwrap_backend):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(STUDY)
    config = load_config(folder).with_overrides(budget="2h")
    kb = open_knowledge_base(folder)
    row = kb.add_study(config.name, config.model_dump(mode="json"), config.budget.text)
    record = StudyRecord(
        study_id=row.id, heldout_seed=secrets.randbelow(2**62), created_at=datetime.now(UTC).isoformat()
    )
    (folder / "study.json").write_text(record.model_dump_json())
    context = compose_study(folder, config, bwrap_backend, kb, record)
    assert train_baselines(context, print) is None
    yield context
    kb.close()


def test_a_verification_claims_a_better_design_and_not_a_copy_of_the_baseline(study):
    """Softmax attention beats linear attention on bytes of Python by ~0.2 bits per byte at these
    settings (seed-to-seed spread ~0.02); a copy of linear attention is the same design."""
    baselines = builtin_baselines()
    better = study.kb.add_architecture(
        "softmax",
        baselines["softmax_attention"].read_text(),
        "human",
        "attention",
        [],
        study_id=study.study_id,
    )
    copy = study.kb.add_architecture(
        "linear_copy", baselines["linear_attention"].read_text() + "\n# the same design\n", "human", "A/A",
        [], study_id=study.study_id,
    )  # fmt: skip

    state = {"experiment_id": "e00001", "architecture_id": better.id}
    claimed = state | verify(study, state)
    assert claimed["status"] == "verified", claimed
    verification = claimed["verification"]
    assert verification["beats_baseline"] and verification["p_value"] < ALPHA, verification
    assert verification["seeds"] == [1, 2, 3] and None not in verification["values"]

    same = verify(study, {"experiment_id": "e00002", "architecture_id": copy.id})
    assert not same["verification"]["beats_baseline"], same

    # The baseline was trained once, on the verification seeds, for both verifications.
    full = [(arch.name, run.seed) for arch, run in study.kb.study_runs(study.study_id, "full")]
    assert sorted(seed for name, seed in full if name == "linear_attention") == [1, 2, 3]
    rows = study.kb.study_verifications(study.study_id)
    assert [row.q_value for row in rows] == pytest.approx(q_values([row.p_value for row in rows]))
    assert [row.beats for row in rows] == [True, False]
    status = study_status(study.folder)
    assert status.claims == 1 and [v.design for v in status.verifications] == ["softmax", "linear_copy"]
    assert [v.replication for v in status.verifications] == ["not replicated", ""]

    # The claim tested again: fresh seeds for both, scored on a fresh held-out set, its own test.
    again = replicate(study, claimed)["replication"]
    assert again["held"] and again["seeds"] == [2000, 2001, 2002], again
    replication = study.kb.get(Verification, again["id"])
    assert replication.replicates == verification["id"] and replication.heldout_draw == 2
    assert replication.q_value is None  # not one more discovery for the false-discovery control
    runs = [(arch.name, run) for arch, run in study.kb.study_runs(study.study_id, "full") if run.seed >= 2000]
    assert sorted((name, run.seed) for name, run in runs) == sorted(
        (name, seed) for name in ("softmax", "linear_attention") for seed in (2000, 2001, 2002)
    )
    assert all(run.result["replication_of"] == verification["id"] for _, run in runs)
    status = study_status(study.folder)
    assert status.claims == 1 and len(status.verifications) == 2  # still one claim, now replicated
    assert status.verifications[0].replication == "held"
    assert replicate(study, claimed) == {}  # replicated already: a resumed node does not do it twice

    # Its report marks the claim as one, and speaks of no other win.
    build_report(study.folder)
    assert_wins_only_from_verifications(study.folder / "report", {"softmax"})


def test_a_design_too_good_to_believe_is_screened_again_on_fresh_data_before_promotion(study):
    """At a margin of 0 every design ahead of the reference is "too good": softmax is (~0.2 bits
    per byte), a copy of the baseline is not."""
    study.config = study.config.model_copy(
        update={"scoring": study.config.scoring.model_copy(update={"too_good_margin": 0.0})}
    )
    baselines = builtin_baselines()
    softmax = baselines["softmax_attention"].read_text()
    better = study.kb.add_architecture("softmax", softmax, "human", "attention", [], study_id=study.study_id)
    first = train_and_record(study, better, "screen", study.config.seed)
    state = {"experiment_id": "e00001", "architecture_id": better.id, "screen_run_id": first.id}
    outcome = recheck(study, state | {"fitness": first.fitness})
    second = study.kb.get(Run, outcome["recheck"]["run_id"])
    assert second.status == "succeeded" and second.result["recheck_of"] == first.id
    assert second.seed == study.config.seed + RECHECK_SEED_OFFSET and second.result["heldout_draw"] == 1
    assert second.result["value"] != first.result["value"]  # another seed, other held-out bytes
    assert outcome["fitness"] == min(first.fitness, second.fitness)  # promotion goes by the lower

    copy = study.kb.add_architecture(
        "linear_copy", baselines["linear_attention"].read_text() + "\n# again\n", "human", "A/A", [],
        study_id=study.study_id,
    )  # fmt: skip
    plain = train_and_record(study, copy, "screen", study.config.seed)
    state = {"experiment_id": "e00002", "architecture_id": copy.id, "screen_run_id": plain.id}
    assert recheck(study, state | {"fitness": plain.fitness}) == {}

    # Both screening results are recorded and shown, the recheck labelled as such.
    view = load_study(study.folder).design(slug(better.id))
    assert [run.purpose for run in view.runs] == [
        "screening (one seed)",
        "too-good recheck (another seed, fresh held-out set)",
    ]
    assert view.recheck_fitness == second.fitness
    assert view.screen_fitness == min(first.fitness, second.fitness)


def test_replicate_refuses_a_design_without_a_claim_in_one_line(study):
    (baseline,) = [arch for arch, _ in study.kb.study_runs(study.study_id, "screen")]
    for design, says in ((baseline.name, "has no verification"), ("nothing", "no design named")):
        done = discover("replicate", design, "-C", str(study.folder))
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_design_computing_a_baselines_function_is_not_trained_again(study):
    (baseline,) = [
        arch for arch, _ in study.kb.study_runs(study.study_id, "screen") if arch.origin == "baseline"
    ]
    assert baseline.functional_hash  # probed before its screening run
    renamed = baseline.code.replace("chunk_size", "block_size") + "\n# written again, as a person might\n"
    again = study.kb.add_architecture(
        "linear_again", renamed, "human", "the same", [], study_id=study.study_id
    )
    outcome = probe(study, {"experiment_id": "e00009", "architecture_id": again.id})
    assert outcome["status"] == "duplicate" and outcome["duplicate_of"] == baseline.id, outcome
    runs = [run for arch, run in study.kb.study_runs(study.study_id) if arch.id == again.id]
    assert [run.status for run in runs] == ["rejected"] and "linear_attention" in runs[0].failure_reason
    assert runs[0].result["duplicate_of"] == baseline.id  # its record points to the original


def test_a_failed_seed_makes_a_verification_inconclusive(study):
    broken = study.kb.add_architecture(
        "nan_mixer", "import torch\nfrom torch import nn\n\n\nclass Mixer(nn.Module):\n"
        "    def __init__(self, d_model: int, **kwargs):\n        super().__init__()\n"
        "        self.proj = nn.Linear(d_model, d_model)\n\n    def forward(self, x):\n"
        "        return self.proj(x) * float('nan')\n",
        "human", "diverges", [], study_id=study.study_id,
    )  # fmt: skip
    outcome = verify(study, {"experiment_id": "e00003", "architecture_id": broken.id})
    verification = outcome["verification"]
    assert verification["status"] == "inconclusive" and not verification["beats_baseline"]
    assert "seed 1" in verification["reason"], verification
    refresh_q_values(study)  # an inconclusive verification takes no part in the study's q-values
    assert study.kb.get(Verification, verification["id"]).q_value is None


def test_the_old_confidence_setting_is_refused_with_what_to_write(tmp_path):
    (tmp_path / "discover.toml").write_text("[promotion]\nconfidence = 0.95\n")
    with pytest.raises(ConfigError, match=r"promotion\.alpha"):
        load_config(tmp_path)
    assert StudyConfig().promotion.seeds == 5 and StudyConfig().promotion.alpha == ALPHA
