"""The trusted harness: determinism, what it writes, and that it actually learns."""

import itertools
import json

import pytest

from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.tasks import get_task

from .conftest import CANDIDATES

QUICK = {"steps": "30", "log_every": "10", "test_examples": "64", "warmup_steps": "5"}


def test_same_seed_gives_the_same_result_on_cpu(tmp_path):
    task = get_task("mqar")
    cfg = task.config(QUICK)
    first = train(builtin_baselines()["linear_attention"], task, cfg, seed=3, out_dir=tmp_path / "a")
    second = train(builtin_baselines()["linear_attention"], task, cfg, seed=3, out_dir=tmp_path / "b")
    other_seed = train(builtin_baselines()["linear_attention"], task, cfg, seed=4)
    assert first.metrics == second.metrics and first.final_train_loss == second.final_train_loss
    assert (tmp_path / "a/metrics.jsonl").read_text().count("\n") == 3
    assert other_seed.final_train_loss != first.final_train_loss


def test_run_folder_holds_a_metrics_stream_and_a_complete_result(tmp_path):
    task = get_task("lm")
    cfg = task.config({"steps": "20", "log_every": "5", "eval_windows": "8", "seq_len": "64"})
    result = train(builtin_baselines()["retention"], task, cfg, seed=0, out_dir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [5, 10, 15, 20]
    assert {"train_loss", "lr", "tokens_per_s"} <= set(lines[0])
    written = json.loads((tmp_path / "result.json").read_text())
    assert written == json.loads(result.model_dump_json())
    assert written["metric"] == "bits_per_byte" and 0 < written["value"] < 8
    assert written["params"] > 0 and written["flops_per_token"] > 0 and written["tokens_per_s"] > 0
    assert written["code_hash"] and written["data_version"] and written["versions"]["torch"]


@pytest.mark.slow
def test_softmax_attention_learns_default_mqar_and_a_weak_mixer_does_not():
    task = get_task("mqar")
    cfg = task.config()
    attention = train(builtin_baselines()["softmax_attention"], task, cfg, seed=0)
    weak = train(CANDIDATES / "weak_short_conv.py", task, cfg, seed=0)
    assert attention.value >= 0.9, attention.metrics
    assert weak.value < 0.5, weak.metrics


def test_prefetched_batches_come_in_order_and_errors_come_through():
    from discover.experiments.harness import prefetched

    assert list(itertools.islice(prefetched(iter(range(100))), 100)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("corpus gone")

    stream = prefetched(failing())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="corpus gone"):
        next(stream)
