"""The lm task's data: every corpus format and tokenizer kind, the split, what a job may read, presets,
and bits per byte."""

import json
import math
import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.tasks import TaskConfigError, get_task, lm_data
from discover.experiments.tasks.lm import LMConfig, token_log_likelihoods

TINY = {"steps": 4, "log_every": 2, "seq_len": 32, "batch_size": 4, "eval_windows": 4, "d_model": 32}
LM = get_task("lm")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test prepares its data afresh, in its own cache."""
    monkeypatch.setenv("DISCOVER_CACHE_DIR", str(tmp_path / "cache"))


def documents(count: int = 60) -> list[str]:
    return [
        f"document {i}: " + " ".join(f"word{(i * j) % 97}" for j in range(40)) + "\n" for i in range(count)
    ]


def text_folder(root: Path) -> Path:
    folder = root / "text"
    folder.mkdir()
    for i, text in enumerate(documents()):
        (folder / f"doc{i}.txt").write_text(text)
    return folder


def jsonl_file(root: Path) -> Path:
    path = root / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": text}) + "\n" for i, text in enumerate(documents())))
    return path


def parquet_file(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / "corpus.parquet"
    pq.write_table(pa.table({"text": documents(), "id": list(range(60))}), path)
    return path


def bpe_file(root: Path, vocab: int = 300) -> Path:
    """A tokenizer.json, as a user brings one: trained here on other text."""
    from discover.experiments.tasks.lm_tokenizer import train_bpe

    trained = train_bpe([t.encode() for t in documents(30)], vocab, root / "tokenizer")
    return Path(trained.path)


def token_shards(root: Path, tokenizer: Path) -> Path:
    """A uint16 shard pair in the common flat layout, made with `tokenizer`."""
    from tokenizers import Tokenizer

    encode = Tokenizer.from_file(str(tokenizer)).encode
    folder = root / "shards"
    folder.mkdir()
    texts = documents()
    for name, part in (("train_000.bin", texts[:50]), ("val_000.bin", texts[50:])):
        ids = [i for text in part for i in encode(text).ids]
        np.asarray(ids, dtype=np.uint16).tofile(folder / name)
    return folder


def settings_for(kind: str, root: Path) -> dict:
    if kind == "text":
        return {"corpus": str(text_folder(root)), "corpus_glob": "*.txt"}
    if kind == "jsonl":
        return {"corpus": str(jsonl_file(root))}
    if kind == "parquet":
        return {"corpus": str(parquet_file(root))}
    tokenizer = bpe_file(root)
    shards = token_shards(root, tokenizer)
    return {
        "corpus": str(shards), "train_files": "train_*.bin", "validation_files": "val_*.bin",
        "tokenizer": str(tokenizer), "vocab_size": 300,
    }  # fmt: skip


FORMATS = ["text", "jsonl", "parquet", "tokens"]


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_splits_trains_and_scores(kind, tmp_path):
    settings = settings_for(kind, tmp_path)
    cfg = LM.config(TINY | settings)
    assert lm_data.corpus_format(cfg) == kind
    prepared = LM.prepared(cfg)
    train_tokens = np.concatenate(prepared.train.arrays)
    assert len(train_tokens) > 0 and len(prepared.validation) > 0
    # A job reads the training folder (and a tokens corpus's training files), never validation.
    assert all("validation" not in p and "val_" not in p for p in prepared.job_paths)
    assert str(lm_data.validation_folder(cfg)) not in " ".join(prepared.job_paths)
    result = train(builtin_baselines()["linear_attention"], LM, cfg, device=torch.device("cpu"))
    assert result.status == "ok" and math.isfinite(result.value) and result.value > 0
    assert set(result.metrics) == {"bits_per_byte", "loss"}


@pytest.mark.parametrize("kind", ["text", "jsonl", "parquet"])
def test_no_validation_document_is_trained_on(kind, tmp_path):
    cfg = LM.config(TINY | settings_for(kind, tmp_path))
    prepared = LM.prepared(cfg)
    train_text = bytes(np.concatenate(prepared.train.arrays).tolist()).decode()
    validation_text = bytes(prepared.validation.tolist()).decode()
    held_out = {line.split(":")[0] for line in validation_text.splitlines() if line}
    trained = {line.split(":")[0] for line in train_text.splitlines() if line}
    assert held_out and trained and not held_out & trained


def test_preparing_is_deterministic_and_redone_when_the_corpus_changes(tmp_path):
    folder = text_folder(tmp_path)
    cfg = LM.config(TINY | {"corpus": str(folder), "corpus_glob": "*.txt"})
    first = lm_data.prepare(cfg)
    again = lm_data.prepare(cfg)
    assert first.train.version == again.train.version
    assert np.array_equal(first.train.arrays[0], again.train.arrays[0])
    (folder / "doc0.txt").write_text("changed text, longer than before\n" * 3)
    changed = lm_data.prepare(cfg)
    assert changed.train.version != first.train.version


def test_a_job_reads_the_same_training_tokens_without_the_corpus(tmp_path):
    folder = text_folder(tmp_path)
    cfg = LM.config(TINY | {"corpus": str(folder), "corpus_glob": "*.txt"})
    prepared = lm_data.prepare(cfg)
    folder.rename(tmp_path / "gone")  # what a job sees of the corpus: nothing
    in_job = lm_data.open_train(cfg)
    assert in_job.version == prepared.train.version
    assert np.array_equal(in_job.arrays[0], prepared.train.arrays[0])
    batch = next(LM.train_batches(cfg, seed=0, device=torch.device("cpu")))
    assert batch.inputs.shape == (4, 32) and torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])


def test_bpe_is_trained_once_and_cached_by_content(tmp_path):
    settings = settings_for("jsonl", tmp_path) | {"tokenizer": "bpe", "vocab_size": 320}
    cfg = LM.config(TINY | settings)
    prepared = LM.prepared(cfg)
    cached = list((tmp_path / "cache" / "tokenizers").glob("bpe-320-*.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert max(int(a.max()) for a in prepared.train.arrays) < 320
    for folder in ("lm", "lm-validation"):  # the prepared tokens gone, the tokenizer kept
        shutil.rmtree(tmp_path / "cache" / folder)
    again = lm_data.prepare(cfg)
    assert cached[0].stat().st_mtime_ns == stamp  # not trained again
    assert np.array_equal(again.train.arrays[0], prepared.train.arrays[0])


def test_bits_per_byte_spreads_the_loss_over_the_text(tmp_path):
    """With bytes, bits per byte is the loss in bits; with a BPE, each token stands for several
    bytes, so the same loss is fewer bits per byte."""
    cfg = LM.config(TINY | settings_for("jsonl", tmp_path))
    targets = LM.heldout(cfg).targets
    logits = torch.zeros(*targets.shape, 256)  # uniform: log(256) nats a token
    metrics = LM.score(logits, targets, cfg)
    assert metrics["loss"] == pytest.approx(math.log(256))
    assert metrics["bits_per_byte"] == pytest.approx(8.0)
    bpe = LM.config(TINY | {"corpus": cfg.corpus, "tokenizer": "bpe", "vocab_size": 320})
    targets = LM.heldout(bpe).targets
    metrics = LM.score(torch.zeros(*targets.shape, 320), targets, bpe)
    text_bytes = sum(
        len(lm_data.tokenizer_for(bpe).tokenizer.decode(row.tolist()).encode()) for row in targets
    )
    assert text_bytes > targets.numel()  # several bytes a token
    assert metrics["bits_per_byte"] == pytest.approx(math.log2(320) * targets.numel() / text_bytes)


def test_the_default_corpus_is_the_standard_library():
    cfg = LMConfig()
    prepared = LM.prepared(cfg)
    assert len(prepared.train.arrays[0]) > 1_000_000 and len(prepared.validation) > 50_000
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    held_out = {Path(path).relative_to(stdlib).parts[0] for path in LM.heldout_files(cfg)}
    assert held_out and held_out <= set(lm_data.STDLIB_VALIDATION_FOLDERS), held_out


def test_bad_corpora_are_one_line_errors(tmp_path):
    def fails(settings: dict, match: str, error: type[Exception] = ValueError) -> None:
        with pytest.raises(error, match=match) as caught:
            LM.prepare(LM.config(TINY | settings))
        assert "\n" not in str(caught.value)

    fails({"corpus": str(tmp_path / "missing")}, "does not exist", FileNotFoundError)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    fails({"corpus": str(bad)}, r"bad.jsonl:2: not a JSON line")
    fails({"corpus": str(jsonl_file(tmp_path)), "text_field": "body"}, "no text field 'body'")
    shards = tmp_path / "odd"
    shards.mkdir()
    (shards / "train.bin").write_bytes(b"\x01\x00\x02")
    (shards / "val.bin").write_bytes(b"\x01\x00")
    fails({"corpus": str(shards), "train_files": "train.bin", "validation_files": "val.bin"}, "whole number")
    fails({"corpus": str(shards), "train_files": "t*.bin", "validation_files": "nothing*"}, "must each match")
    tokenizer = bpe_file(tmp_path)
    fails(
        {"corpus": str(jsonl_file(tmp_path)), "tokenizer": str(tokenizer)}, "set vocab_size to at least 300"
    )


def test_presets_are_settings_a_user_overrides_key_by_key():
    explore = LM.config({"preset": "asi-arch-explore"})
    assert (explore.n_layers, explore.d_model, explore.seq_len, explore.steps) == (8, 256, 2048, 2000)
    assert explore.batch_size * explore.seq_len * explore.steps == 256 * 2048 * 2000
    assert LM.config({"preset": "asi-arch-explore", "steps": 10}).steps == 10
    assert LM.config({"preset": "cpu-tiny"}) == LM.config({})
    with pytest.raises(TaskConfigError, match=r"unknown preset 'huge'.*asi-arch-verify"):
        LM.config({"preset": "huge"})
    with pytest.raises(TaskConfigError, match="micro_batch_size 3 must divide batch_size 16"):
        LM.config({"micro_batch_size": 3})


def test_micro_batches_take_the_same_step(tmp_path):
    """A step over micro-batches is the step over the whole batch (up to float rounding)."""
    cfg = LM.config(TINY | {"steps": 3, "batch_size": 8})
    whole = train(builtin_baselines()["softmax_attention"], LM, cfg, device=torch.device("cpu"))
    parts = train(
        builtin_baselines()["softmax_attention"], LM, cfg.model_copy(update={"micro_batch_size": 2}),
        device=torch.device("cpu"),
    )  # fmt: skip
    assert parts.value == pytest.approx(whole.value, rel=1e-4)
    assert parts.final_train_loss == pytest.approx(whole.final_train_loss, rel=1e-4)


SAMPLE = Path(__file__).parent / "data" / "zero_shot_sample.jsonl"


def test_multiple_choice_scoring_matches_a_hand_computed_example(tmp_path):
    """Bytes; every logit 0 (each byte 1/256) but where noted. Question 1: " yy" is twice 1/2 after
    its space: log-likelihood ln(1/256) + 2 ln(1/2) = -6.93 against " x"'s 2 ln(1/256) = -11.09;
    both accuracies pick it. Question 2: " bbbbbb" is six times 1/16 after its space: -22.18
    against " a"'s -11.09, so the raw sum picks " a" (wrong), but per byte -3.17 against -5.55
    picks " bbbbbb" (right). acc = 1/2, acc_norm = 2/2."""
    from discover.experiments.tasks.lm_tokenizer import ByteTokenizer
    from discover.experiments.tasks.lm_zero_shot import Question, choice_rows, score_choices

    questions = [Question("hand", "ab", (" x", " yy"), 1), Question("hand", "q", (" a", " bbbbbb"), 1)]
    rows = choice_rows(questions, ByteTokenizer(), seq_len=16)
    logits = torch.zeros(len(rows.targets), 16, 256)
    for row, letter, logit in ((1, "y", math.log(255)), (3, "b", math.log(17))):  # p = 1/2, 1/16
        labelled = (rows.targets[row] == ord(letter)).nonzero().flatten()
        assert len(labelled) == {"y": 2, "b": 6}[letter]
        logits[row, labelled, ord(letter)] = logit
    metrics = score_choices(token_log_likelihoods(logits, rows.targets), questions)
    assert metrics["zero_shot_acc"] == 0.5 and metrics["zero_shot_acc_norm"] == 1.0
    assert metrics["hand_acc"] == 0.5 and metrics["hand_acc_norm"] == 1.0
    # The rows: context then choice, only the choice labelled, each choice token where it is predicted.
    assert rows.inputs[1, :3].tolist() == list(b"ab ") and rows.targets[1, 1:4].tolist() == list(b" yy")


def test_zero_shot_accuracy_is_scored_beside_the_validation_loss(tmp_path):
    cfg = LM.config(TINY | settings_for("jsonl", tmp_path) | {"zero_shot": str(SAMPLE)})
    result = train(builtin_baselines()["linear_attention"], LM, cfg, device=torch.device("cpu"))
    assert {"zero_shot_acc", "zero_shot_acc_norm", "zero_shot_sample_acc_norm"} <= set(result.metrics)
    assert 0 <= result.metrics["zero_shot_acc_norm"] <= 1
    without = LM.config(TINY | {"corpus": cfg.corpus})
    heldout = LM.heldout(cfg)
    assert len(heldout.inputs) == len(LM.heldout(without).inputs) + 15  # a row per choice: 15 in the sample
    logits = torch.randn(*heldout.targets.shape, 256)
    windows = len(LM.heldout(without).inputs)
    with_scores = LM.score(logits, heldout.targets, cfg)
    alone = LM.score(logits[:windows], heldout.targets[:windows], without)
    assert with_scores["bits_per_byte"] == pytest.approx(alone["bits_per_byte"])


def test_bad_benchmarks_are_one_line_errors(tmp_path):
    corpus = settings_for("jsonl", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"zero-shot benchmark .* does not exist"):
        LM.prepare(LM.config(TINY | corpus | {"zero_shot": str(tmp_path / "none.jsonl")}))
    bad = tmp_path / "bad.jsonl"
    good = '{"context": "a", "choices": ["b", "c"], "answer": 0}'
    bad.write_text(good + '\n{"context": "a", "choices": ["b"], "answer": 0}\n')  # one choice only
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a question"):
        LM.prepare(LM.config(TINY | corpus | {"zero_shot": str(bad)}))


def test_jobs_return_final_states_and_the_host_applies_the_head(tmp_path):
    """A predict job's output for lm is [rows, time, d_model], whatever the vocabulary; scored with
    the trained head outside the sandbox it gives what the model's own logits give."""
    from discover.experiments.contract import load_mixer_class

    cfg = LM.config(
        TINY
        | settings_for("jsonl", tmp_path)
        | {"tokenizer": "bpe", "vocab_size": 320, "zero_shot": str(SAMPLE)}
    )
    model = LM.build_model(load_mixer_class(builtin_baselines()["softmax_attention"]), cfg)
    heldout = LM.heldout(cfg)
    states = LM.outputs(model, heldout.inputs, cfg, torch.device("cpu"))
    assert states.shape == (*heldout.inputs.shape, cfg.d_model)
    from_states = LM.score_outputs(states, heldout.targets, cfg, model.state_dict())
    with torch.no_grad():
        from_logits = LM.score(model(heldout.inputs), heldout.targets, cfg)
    assert from_states.keys() == from_logits.keys()
    for key, value in from_logits.items():
        assert from_states[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_a_relative_corpus_path_is_absolute_before_a_job_reads_it(tmp_path, monkeypatch):
    """A job runs in another directory: it is told every given setting as the host validated it."""
    from discover.experiments.runspec import RunSpec

    jsonl_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    spec = RunSpec.resolve("lm", {"corpus": "corpus.jsonl", "steps": "4", "preset": "cpu-tiny"})
    assert spec.settings == {"corpus": str(tmp_path / "corpus.jsonl"), "steps": 4, "preset": "cpu-tiny"}
    monkeypatch.chdir("/")
    assert lm_data.data_key(LM.config(spec.settings)) == lm_data.data_key(spec.config)


def test_states_the_head_cannot_read_are_a_failed_run_not_a_crash(tmp_path):
    cfg = LM.config(TINY | settings_for("jsonl", tmp_path))
    heldout = LM.heldout(cfg)
    wrong = torch.zeros(*heldout.inputs.shape, cfg.d_model + 1)
    with pytest.raises(ValueError, match="the trained head cannot read"):
        LM.score_outputs(wrong, heldout.targets, cfg, {"head.weight": torch.zeros(256, cfg.d_model)})
