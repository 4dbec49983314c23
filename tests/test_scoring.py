"""Fitness: relative to the reference, weights from config, the too-good-to-be-true gate."""

import pytest

from discover.experiments.harness import TrainResult
from discover.experiments.tasks import get_task
from discover.vetting.scoring import ScoringConfig, fitness

LM, MQAR = get_task("lm"), get_task("mqar")


def result(value: float, tokens_per_s: float = 1000.0, memory: float = 100.0, status: str = "ok"):
    return TrainResult(
        candidate="c", code_hash="h", task="lm", seed=0, status=status, metric="bits_per_byte",
        value=value, metrics={"bits_per_byte": value}, final_train_loss=1.0, params=1, flops_per_token=1.0,
        tokens_per_s=tokens_per_s, peak_memory_mb=memory, wall_time_s=1.0, steps=1, device="cpu",
        data_version="d", config={}, versions={},
    )  # fmt: skip


def test_parity_scores_one_half():
    f = fitness(result(2.0), result(2.0), LM)
    assert abs(f.value - 0.5) < 1e-9 and f.relative_improvement == 0


def test_direction_of_the_metric_is_respected():
    better_loss = fitness(result(1.8), result(2.0), LM)
    better_accuracy = fitness(result(0.9), result(0.8), MQAR)
    worse_accuracy = fitness(result(0.7), result(0.8), MQAR)
    assert better_loss.value > 0.5 and better_accuracy.value > 0.5 > worse_accuracy.value


def test_quality_still_ranks_designs_far_above_a_weak_reference():
    # Against a reference at 6% accuracy, a clipped relative improvement scored all of these 1.0.
    weak = result(0.06)
    qualities = [fitness(result(accuracy), weak, MQAR).quality for accuracy in (0.4, 0.85, 0.99, 0.999)]
    assert qualities == sorted(qualities) and len(set(qualities)) == 4
    assert 0.7 < qualities[0] < 0.8 and 0.85 < qualities[1] < 0.95  # the spread the search relies on
    assert qualities[3] - qualities[2] > 0.01  # 99.9% still clearly beats 99%


def test_learning_a_little_outranks_running_faster_at_chance():
    # Session 8's search benchmark: DeltaNet at 11% accuracy and half the throughput scored below a
    # faster design at chance (6%), so evolution never left the designs that learn nothing.
    chance = result(0.062)
    learns_a_little = fitness(result(0.109, tokens_per_s=500, memory=150), chance, MQAR)
    fast_at_chance = fitness(result(0.060, tokens_per_s=2000, memory=80), chance, MQAR)
    assert learns_a_little.value > fast_at_chance.value


def test_a_perfect_reference_still_ranks_designs_by_their_metric():
    # Gated DeltaNet scores 1.0 on default mqar: near-perfect designs tie it, worse ones rank below.
    perfect = result(1.0)
    near, good, poor = (fitness(result(a, tokens_per_s=t), perfect, MQAR) for a, t in
                        ((0.9998, 1000), (0.986, 1000), (0.25, 4000)))  # fmt: skip
    assert abs(near.quality - 0.5) < 1e-9
    assert near.value > good.value > poor.value  # the fast poor design does not overtake


def test_faster_and_leaner_beats_equal_quality():
    fast = fitness(result(2.0, tokens_per_s=4000, memory=50), result(2.0), LM)
    assert fast.efficiency > 0.5 and fast.value > 0.5


def test_weights_and_scale_come_from_config():
    quality_only = ScoringConfig(quality_weight=1.0, efficiency_weight=0.0)
    slow = fitness(result(2.0, tokens_per_s=10), result(2.0), LM, quality_only)
    assert abs(slow.value - 0.5) < 1e-9
    default = fitness(result(1.9), result(2.0), LM)
    coarse = fitness(result(1.9), result(2.0), LM, ScoringConfig(quality_scale=1.0))
    assert 0.5 < coarse.quality < default.quality


def test_judge_score_enters_when_given():
    without = fitness(result(2.0), result(2.0), LM)
    with_judge = fitness(result(2.0), result(2.0), LM, judge_score=1.0)
    assert with_judge.value > without.value and with_judge.judge == 1.0


def test_too_good_to_be_true_is_flagged_not_crowned():
    plausible = fitness(result(1.9), result(2.0), LM)
    suspicious = fitness(result(0.5), result(2.0), LM)
    assert not plausible.needs_verification and suspicious.needs_verification


def test_diverged_run_scores_zero():
    assert fitness(result(float("nan"), status="diverged"), result(2.0), LM).value == 0.0


def test_zero_shot_accuracy_enters_quality_with_its_weight():
    """Equal bits per byte; the design answers more benchmark questions than the reference."""
    design, reference = result(1.5), result(1.5)
    design.metrics["zero_shot_acc_norm"], reference.metrics["zero_shot_acc_norm"] = 0.6, 0.4
    assert fitness(design, reference, LM).quality == 0.5  # weight 0: recorded, not scored
    weighted = fitness(design, reference, LM, ScoringConfig(zero_shot_weight=1.0))
    assert weighted.quality > 0.5
    reversed_ = fitness(reference, design, LM, ScoringConfig(zero_shot_weight=1.0))
    assert reversed_.quality == pytest.approx(1 - weighted.quality)
