"""Choices that change numbers are explicit: invalid predictions in F1, macro-F1's labels, rank scoring's score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from bmtpt_cli.data.registry import get_task
from bmtpt_cli.data.task import TextExample
from bmtpt_cli.scoring.metrics import compute_metrics
from bmtpt_cli.scoring.score import rank, score_task
from reference import sequence_log_likelihoods

MRPC = ("not_equivalent", "equivalent")
CB = ("entailment", "contradiction", "neutral")


def _examples(labels: list[int], words) -> list[TextExample]:
    return [TextExample(source=f"x{i}", target=words[label], label=label) for i, label in enumerate(labels)]


def test_invalid_predictions_count_as_the_wrong_class_like_the_baselines():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200).tolist()
    predicted = [g if rng.random() < 0.7 else 1 - g for g in gold]
    predicted = [p if rng.random() > 0.2 else -1 for p in predicted]  # 20% invalid generations
    texts = [MRPC[p] if p >= 0 else "equivalentish" for p in predicted]
    examples = _examples(gold, MRPC)
    # ATTEMPT/T5 `f1_score_with_invalid`: an invalid prediction becomes 1 - target
    attempt = np.array(predicted)
    attempt[attempt == -1] = 1 - np.array(gold)[attempt == -1]
    wrong = compute_metrics(["f1"], texts, examples, labels=MRPC, invalid="wrong")["f1"]
    assert wrong == pytest.approx(f1_score(gold, attempt))
    negative = compute_metrics(["f1"], texts, examples, labels=MRPC, invalid="negative")["f1"]
    assert negative == pytest.approx(f1_score(gold, np.where(np.array(predicted) == 1, 1, 0)))
    assert wrong != pytest.approx(negative)


def test_cb_macro_f1_is_over_its_three_labels_even_when_one_is_absent():
    gold = [0, 0, 1, 1, 0, 1]  # no "neutral" in this split
    predicted = [0, 2, 1, 0, 0, 1]
    texts = [CB[p] for p in predicted]
    value = compute_metrics(["macro_f1"], texts, _examples(gold, CB), labels=CB)["macro_f1"]
    assert value == pytest.approx(f1_score(gold, predicted, labels=[0, 1, 2], average="macro", zero_division=0))
    over_present = f1_score(gold, predicted, labels=[0, 1], average="macro", zero_division=0)
    assert value != pytest.approx(over_present)


def test_mean_rank_score_divides_each_label_by_its_token_count(runner):
    task = get_task("demo_rte")
    examples = task.examples("validation")[:12]
    prompt = torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(3))
    words = task.verbalisers("words")
    lengths = torch.tensor([len(runner.tokenizer(w).input_ids) for w in words], dtype=torch.float32)
    expected_sum, expected_mean = [], []
    for example in examples:  # one example at a time: an independent path through the runner
        ll = sequence_log_likelihoods(runner, prompt.unsqueeze(0).expand(len(words), -1, -1), [example.source] * len(words), list(words))
        expected_sum.append(words[int(ll.argmax())])
        expected_mean.append(words[int((ll / lengths).argmax())])
    assert rank(runner, prompt, examples, words, "sum") == expected_sum
    assert rank(runner, prompt, examples, words, "mean") == expected_mean
    score = score_task(runner, prompt, task, examples, rank_score="mean")
    assert score.rules == {"rank_score": "mean"} and score.invalid == 0
