"""Zero-shot multiple choice from local files, scored outside the sandbox.

A benchmark file is JSON lines, one question a line:

    {"context": "The capital of France is", "choices": [" Paris", " Rome", " Lima"], "answer": 0}

Each choice becomes one held-out row: the context's tokens, then the choice's, the choice's tokens
labelled. A job sees the rows (contexts and choices) among the validation windows and returns
logits, as for any held-out input; the answers never leave the host. The trusted side sums each
choice's log-likelihood and picks the most likely choice: `acc` by the raw sum, `acc_norm` by the
sum over the choice's length in bytes (lm-evaluation-harness's two accuracies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from discover.experiments.tasks.base import IGNORE
from discover.experiments.tasks.lm_tokenizer import Tokenizer


@dataclass(frozen=True)
class Question:
    benchmark: str  # the file's stem
    context: str
    choices: tuple[str, ...]
    answer: int


def load_questions(paths: list[str]) -> list[Question]:
    """Every question of every file, in order; a malformed line fails with one line naming it."""
    questions = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"zero-shot benchmark {path} does not exist")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                choices = tuple(record["choices"])
                question = Question(path.stem, record["context"], choices, int(record["answer"]))
                valid = (
                    isinstance(question.context, str)
                    and len(choices) >= 2
                    and all(isinstance(c, str) and c for c in choices)
                    and 0 <= question.answer < len(choices)
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                valid = False
            if not valid:
                raise ValueError(
                    f"{path}:{number}: not a question: want "
                    '{"context": str, "choices": [two or more non-empty str], "answer": index}'
                )
            questions.append(question)
    return questions


@dataclass(frozen=True)
class ChoiceRows:
    """The held-out rows of a set of questions: one a choice, in question order."""

    questions: list[Question]
    inputs: torch.Tensor  # [choices, seq_len]; padded after the choice (the model is causal)
    targets: torch.Tensor  # [choices, seq_len]; the choice's tokens, IGNORE elsewhere


def choice_rows(questions: list[Question], tokenizer: Tokenizer, seq_len: int) -> ChoiceRows:
    """Context then choice, tokenized apart (so every choice of a question shares the context's
    tokens), cut from the left to seq_len + 1 tokens when longer."""
    inputs, targets = [], []
    for question in questions:
        context = tokenizer.encode([question.context.encode()])[0]
        for choice in tokenizer.encode([c.encode() for c in question.choices]):
            choice = choice[:seq_len]  # a choice longer than the window keeps its start
            tokens = np.concatenate([context, choice])[-(seq_len + 1) :].astype(np.int64)
            first = max(len(tokens) - len(choice), 1)  # a first token with nothing before it is not scored
            labelled = np.full(seq_len, IGNORE, dtype=np.int64)
            labelled[first - 1 : len(tokens) - 1] = tokens[first:]
            row = np.zeros(seq_len, dtype=np.int64)
            row[: len(tokens) - 1] = tokens[:-1]
            inputs.append(row)
            targets.append(labelled)
    return ChoiceRows(questions, torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets)))


def score_choices(log_likelihoods: torch.Tensor, questions: list[Question]) -> dict[str, float]:
    """Accuracy by raw and by byte-normalised log-likelihood, over all questions and per file, from
    each row's token log-likelihoods (0 where unlabelled)."""
    likelihood = log_likelihoods.sum(dim=1).tolist()
    right: dict[str, list[tuple[bool, bool]]] = {}
    row = 0
    for question in questions:
        count = len(question.choices)
        raw = likelihood[row : row + count]
        normalised = [ll / len(c.encode()) for ll, c in zip(raw, question.choices, strict=True)]
        row += count
        right.setdefault(question.benchmark, []).append(
            (int(np.argmax(raw)) == question.answer, int(np.argmax(normalised)) == question.answer)
        )
    every = [r for results in right.values() for r in results]
    metrics = {"zero_shot_acc": _mean(every, 0), "zero_shot_acc_norm": _mean(every, 1)}
    for benchmark, results in right.items():
        metrics |= {f"{benchmark}_acc": _mean(results, 0), f"{benchmark}_acc_norm": _mean(results, 1)}
    return metrics


def _mean(results: list[tuple[bool, bool]], which: int) -> float:
    return sum(r[which] for r in results) / len(results)
