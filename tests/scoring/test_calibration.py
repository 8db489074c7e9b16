"""Calibration of rank-scored predictions (#25): ECE (equal-width and adaptive bins), NLL and Brier
against hand computations and scikit-learn, and what `bmtpt evaluate` reports."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bmtpt_cli.scoring.calibration import calibration, expected_calibration_error, label_distribution, rank_calibration
from clihelpers import bmtpt


def test_equal_width_ece_by_hand_with_confidences_on_the_bin_edges():
    # bins ((m-1)/15, m/15]: 2/15 is in the second bin, just above it in the third, 1.0 in the last
    confidences = [2 / 15, 2 / 15 + 1e-9, 0.5, 0.5, 1.0]
    correct = [True, False, True, False, True]
    bins = {1: [0], 2: [1], 7: [2, 3], 14: [4]}
    want = sum(len(b) / 5 * abs(sum(correct[i] for i in b) / len(b) - sum(confidences[i] for i in b) / len(b))
               for b in bins.values())
    assert expected_calibration_error(confidences, correct) == pytest.approx(want, abs=1e-15)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0  # perfectly calibrated
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0, abs=1e-12)


def test_adaptive_ece_groups_equal_counts_of_the_sorted_examples():
    confidences = [0.95, 0.6, 0.7, 0.55, 0.99, 0.8]
    correct = [True, False, True, True, True, False]
    # 3 bins of 2 over the sorted order: (0.55, 0.6), (0.7, 0.8), (0.95, 0.99)
    want = (2 / 6) * abs(1 / 2 - 0.575) + (2 / 6) * abs(1 / 2 - 0.75) + (2 / 6) * abs(1.0 - 0.97)
    assert expected_calibration_error(confidences, correct, bins=3, adaptive=True) == pytest.approx(want, abs=1e-15)


def test_label_distribution_is_the_softmax_of_the_scores():
    scores = {"yes": -0.3, "no": -2.1, "maybe": -40.0}
    want = torch.softmax(torch.tensor(list(scores.values()), dtype=torch.float64), dim=0).tolist()
    assert list(label_distribution(scores).values()) == pytest.approx(want, rel=1e-12)


def test_nll_and_brier_against_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    distributions, golds = [], []
    for _ in range(50):
        p = float(torch.rand((), generator=generator))
        distributions.append({"no": 1 - p, "yes": p})
        golds.append("yes" if float(torch.rand((), generator=generator)) < 0.6 else "no")
    got = calibration(distributions, golds)
    y = [int(g == "yes") for g in golds]
    p_yes = [d["yes"] for d in distributions]
    assert got["nll"] == pytest.approx(metrics.log_loss(y, [[1 - p, p] for p in p_yes]), rel=1e-12)
    assert got["brier"] == pytest.approx(2 * metrics.brier_score_loss(y, p_yes), rel=1e-12)  # both classes, not the positive only
    accuracy = sum((d["yes"] > 0.5) == (g == "yes") for d, g in zip(distributions, golds)) / 50
    assert 0 <= got["ece"] <= 1 and got["examples"] == 50 and accuracy > 0


def test_calibration_is_undefined_when_a_gold_answer_is_no_candidate():
    assert "undefined" in rank_calibration([{"a": 0.0, "b": -1.0}], ["c"])


def test_evaluate_reports_calibration_equal_to_its_own_predictions_scores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bmtpt("adapt", "--init", "random", "--tasks", "demo_rte", "--steps", "2", "--eval-every", "1", "--batch-size",
                 "4", "--warmup-steps", "0", "--out", "p.safetensors").exit_code == 0
    assert bmtpt("evaluate", "--prompts", "p.safetensors", "--out", "r.json", "--predictions").exit_code == 0
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    records = [json.loads(line) for line in (tmp_path / "r.json.predictions.jsonl").read_text().splitlines()]
    # recomputed from the per-example scores the predictions file holds, by hand
    nll = 0.0
    for record in records:
        top = max(record["scores"].values())
        total = sum(math.exp(s - top) for s in record["scores"].values())
        nll -= record["scores"][record["gold"]] - top - math.log(total)
    assert result["calibration"]["nll"] == pytest.approx(nll / len(records), rel=1e-9)
    assert set(result["calibration"]) == {"ece", "ece_adaptive", "nll", "brier", "bins", "examples"}
    assert bmtpt("evaluate", "--prompts", "p.safetensors", "--out", "g.json", "--decode", "generate").exit_code == 0
    (generated,) = json.loads((tmp_path / "g.json").read_text())["results"]
    assert "undefined" in generated["calibration"]
