"""Calibration of rank-scored predictions (#25): ECE (equal-width and adaptive bins), NLL and Brier
against hand computations and scikit-learn, temperature scaling against a brute-force search, the
reliability bins against a brute-force binning, and what `bmtpt evaluate` reports (--calibrate, --plots)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.calibration import (
    TEMPERATURE_RANGE, bin_index, calibration, confidence_and_correctness, expected_calibration_error, fit_temperature,
    label_distribution, rank_calibration, reliability_bins, scaled_scores, temperature_nll, temperature_scaling,
)
from clihelpers import bmtpt, one_line_error


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


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    """Prompts adapted for two steps on demo_rte (tiny), shared by the tests of `bmtpt evaluate` below."""
    path = tmp_path_factory.mktemp("prompts") / "p.safetensors"
    assert bmtpt("adapt", "--init", "random", "--tasks", "demo_rte", "--steps", "2", "--eval-every", "1", "--batch-size",
                 "4", "--warmup-steps", "0", "--out", path).exit_code == 0
    return path


def test_evaluate_reports_calibration_equal_to_its_own_predictions_scores(tmp_path, monkeypatch, prompts_file):
    monkeypatch.chdir(tmp_path)
    assert bmtpt("evaluate", "--prompts", prompts_file, "--out", "r.json", "--predictions").exit_code == 0
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
    # generated: calibration and the temperature are undefined, said so, and nothing is drawn (no failure)
    generated_run = bmtpt("evaluate", "--prompts", prompts_file, "--out", "g.json", "--decode", "generate", "--calibrate",
                          "--plots")
    assert generated_run.exit_code == 0, generated_run.output
    report = json.loads((tmp_path / "g.json").read_text())
    (generated,) = report["results"]
    assert "undefined" in generated["calibration"] and generated["calibration"]["temperature"].startswith("not defined")
    assert report["plots"] == [] and not list(tmp_path.glob("g.json.reliability.*"))


# ------------------------------------------------------------------------------- reliability bins
def _brute_force_bin(confidence: float, bins: int) -> int:
    """The bin ((m−1)/bins, m/bins] (float edges) holding `confidence`, from 0; ≤ 0 in the first."""
    for m in range(1, bins + 1):
        if confidence <= m / bins:
            return m - 1
    return bins - 1


def test_reliability_bins_against_a_brute_force_binning_with_confidences_on_every_edge():
    generator = torch.Generator().manual_seed(3)
    edges = [m / 15 for m in range(16)]
    confidences = (edges + [math.nextafter(e, 2.0) for e in edges] + [math.nextafter(e, -1.0) for e in edges[1:]]
                   + torch.rand(200, generator=generator, dtype=torch.float64).tolist())
    correct = [bool(b) for b in (torch.rand(len(confidences), generator=generator) < 0.6).tolist()]
    for m in range(1, 16):  # exactly m/15 is in bin m, the next float above it in bin m + 1
        assert bin_index(m / 15) == m - 1
        assert bin_index(math.nextafter(m / 15, 2.0)) == min(m, 14)
    assert bin_index(0.0) == 0
    want = [[] for _ in range(15)]
    for i, confidence in enumerate(confidences):
        want[_brute_force_bin(confidence, 15)].append(i)
    got = reliability_bins(confidences, correct)
    assert [row["count"] for row in got] == [len(group) for group in want]
    for m, (row, group) in enumerate(zip(got, want)):
        assert (row["lower"], row["upper"]) == (m / 15, (m + 1) / 15)
        if group:
            assert row["accuracy"] == pytest.approx(sum(correct[i] for i in group) / len(group), abs=1e-15)
            assert row["confidence"] == pytest.approx(sum(confidences[i] for i in group) / len(group), abs=1e-15)
        else:
            assert row["accuracy"] is None and row["confidence"] is None
    ece = sum(row["count"] / len(confidences) * abs(row["accuracy"] - row["confidence"]) for row in got if row["count"])
    assert ece == pytest.approx(expected_calibration_error(confidences, correct), abs=1e-15)


# ------------------------------------------------------------------------------- temperature scaling
def _scored(n: int, sharpness: float, seed: int, labels=("a", "b", "c")) -> tuple[list[dict], list[str]]:
    """n examples: scores = sharpness × (gold bonus + noise), so sharpness > 1 is over- and < 1 under-confident."""
    generator = torch.Generator().manual_seed(seed)
    scores, golds = [], []
    for _ in range(n):
        gold = labels[int(torch.randint(len(labels), (), generator=generator))]
        noise = torch.randn(len(labels), generator=generator, dtype=torch.float64)
        scores.append({label: sharpness * (float(noise[j]) + (1.0 if label == gold else 0.0)) - 3.0
                       for j, label in enumerate(labels)})
        golds.append(gold)
    return scores, golds


def _grid_nll(scores, golds, temperatures: torch.Tensor) -> torch.Tensor:
    """The NLL of softmax(scores / T) for every T of `temperatures`, in float64 with torch (independent of the code)."""
    labels = list(scores[0])
    matrix = torch.tensor([[own[label] for label in labels] for own in scores], dtype=torch.float64)  # (N, C)
    gold = torch.tensor([labels.index(g) for g in golds])
    scaled = matrix.unsqueeze(0) / temperatures.view(-1, 1, 1)  # (G, N, C)
    picked = scaled.log_softmax(-1).gather(-1, gold.view(1, -1, 1).expand(len(temperatures), -1, 1))
    return -picked.squeeze(-1).mean(-1)


@pytest.mark.parametrize("sharpness", [6.0, 0.4])  # over-confident (T > 1) and under-confident (T < 1) scores
def test_fit_temperature_matches_a_brute_force_search(sharpness):
    scores, golds = _scored(120, sharpness, seed=int(sharpness * 10))
    fitted = fit_temperature(scores, golds)
    grid = torch.logspace(math.log10(TEMPERATURE_RANGE[0]), math.log10(TEMPERATURE_RANGE[1]), 8001, dtype=torch.float64)
    nll = _grid_nll(scores, golds, grid)
    best = int(nll.argmin())
    assert 0 < best < len(grid) - 1  # an interior minimum
    step = math.log(float(grid[1] / grid[0]))
    assert abs(math.log(fitted) - math.log(float(grid[best]))) <= step
    assert (fitted > 1) == (sharpness > 1)
    assert temperature_nll(scores, golds, fitted) <= float(nll.min()) + 1e-12  # no grid point does better
    at_fitted = _grid_nll(scores, golds, torch.tensor([fitted], dtype=torch.float64))
    assert temperature_nll(scores, golds, fitted) == pytest.approx(float(at_fitted[0]), rel=1e-12)


def test_temperature_scaling_lowers_the_fitted_nll_and_keeps_every_prediction():
    scores, golds = _scored(150, 5.0, seed=7)
    fitted = fit_temperature(scores, golds)
    plain = rank_calibration(scores, golds)
    scaled = temperature_scaling(scores, golds, scores, golds, fitted_on="validation")
    assert scaled["temperature"] == fitted and scaled["fitted_on"] == "validation (150 examples)"
    assert scaled["scaled"]["nll"] <= plain["nll"]  # on the split it was fitted on, the NLL can only go down
    for own, rescaled in zip(scores, scaled_scores(scores, fitted)):  # argmax, so accuracy, unchanged
        assert max(own, key=own.get) == max(rescaled, key=rescaled.get)
    _, correct = confidence_and_correctness(scores, golds)
    _, correct_scaled = confidence_and_correctness(scaled_scores(scores, fitted), golds)
    assert correct == correct_scaled
    # T = 1 is the unscaled calibration exactly
    assert scaled_scores(scores, 1.0) == scores
    assert calibration([label_distribution(s) for s in scaled_scores(scores, 1.0)], golds) == plain


def test_temperature_fitting_edge_cases():
    assert fit_temperature([{"a": -1.0, "b": -1.0}] * 3, ["a", "b", "a"]) == 1.0  # ties: T does not matter
    separable = [{"a": 0.0, "b": -1.0}, {"a": -2.0, "b": 0.0}]
    assert fit_temperature(separable, ["a", "b"]) == TEMPERATURE_RANGE[0]  # wants T → 0: the bound
    assert fit_temperature(separable, ["b", "a"]) == TEMPERATURE_RANGE[1]  # always wrong: as flat as allowed
    assert temperature_scaling([{"a": 0.0}], ["z"], [{"a": 0.0}], ["a"], fitted_on="v")["temperature"].startswith("not defined")
    assert temperature_scaling([], [], [{"a": 0.0}], ["a"], fitted_on="v")["temperature"].startswith("not defined")
    with pytest.raises(ValueError):
        fit_temperature([{"a": 0.0}], ["z"])
    with pytest.raises(ValueError):
        scaled_scores([{"a": 0.0}], 0.0)


def test_the_probe_averages_scaled_calibration_over_seeds():
    from bmtpt_cli.experiments.probe import mean_calibration

    entries = [{"ece": e, "ece_adaptive": e, "nll": 1.0 + e, "brier": e, "temperature": t, "fitted_on": "dev (8 examples)",
                "scaled": {"ece": e / 2, "ece_adaptive": e / 2, "nll": 1.0, "brier": e / 2}} for e, t in ((0.2, 2.0), (0.4, 3.0))]
    mean = mean_calibration(entries, [5, 6])
    assert mean["ece"] == pytest.approx(0.3) and mean["scaled"]["ece"] == pytest.approx(0.15)
    assert mean["temperature_per_seed"] == {"5": 2.0, "6": 3.0}
    undefined = {"undefined": "generated", "temperature": "not defined: generated"}
    assert mean_calibration([undefined, undefined], [0, 1]) == undefined


# ------------------------------------------------------------------------------- evaluate --calibrate --plots
def test_evaluate_calibrate_and_plots(tmp_path, monkeypatch, prompts_file):
    monkeypatch.chdir(tmp_path)
    result = bmtpt("evaluate", "--prompts", prompts_file, "--out", "r.json", "--calibrate", "--plots", "--predictions")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    (scored,) = report["results"]
    entry = scored["calibration"]
    records = [json.loads(line) for line in (tmp_path / "r.json.predictions.jsonl").read_text().splitlines()]
    assert entry["fitted_on"].startswith("validation (") and isinstance(entry["temperature"], float)
    assert TEMPERATURE_RANGE[0] <= entry["temperature"] <= TEMPERATURE_RANGE[1]
    # the scaled NLL, recomputed by hand from the test examples' scores and the reported T
    temperature, nll = entry["temperature"], 0.0
    for record in records:
        scaled = {label: score / temperature for label, score in record["scores"].items()}
        top = max(scaled.values())
        nll -= scaled[record["gold"]] - top - math.log(sum(math.exp(s - top) for s in scaled.values()))
    assert entry["scaled"]["nll"] == pytest.approx(nll / len(records), rel=1e-9)
    assert scored["value"] == sum(r["prediction"] == r["gold"] for r in records) / len(records)  # accuracy unchanged
    # one diagram per rank-scored task, beside the results, listed in the report and on stdout; no temporaries left
    plot = tmp_path / "r.json.reliability.demo_rte.png"
    assert report["plots"] == ["r.json.reliability.demo_rte.png"] and f"wrote {report['plots'][0]}" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp"))


def test_evaluate_calibrate_refusals_are_one_line_and_write_nothing(tmp_path, monkeypatch, prompts_file):
    from bmtpt_cli.data.config import DataConfig

    monkeypatch.chdir(tmp_path)
    real = DataConfig.examples

    def no_validation(self, task, split):
        if split == "validation":
            raise BmtptError(f"task {task.name} has no validation file in '/data/x': add val.jsonl")
        return real(self, task, split)

    with monkeypatch.context() as patch:
        patch.setattr(DataConfig, "examples", no_validation)
        line = one_line_error(bmtpt("evaluate", "--prompts", prompts_file, "--out", "r.json", "--calibrate"))
    assert "--calibrate" in line and "validation" in line and "drop --calibrate" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no results, no lock, no temporaries
    line = one_line_error(bmtpt("evaluate", "--prompts", prompts_file, "--calibrate", "--split", "validation"))
    assert "--split validation" in line and "test split" in line
    line = one_line_error(bmtpt("evaluate", "--shots", "4", "--init", "random", "--calibrate", "--dev-shots", "0"))
    assert line == "error: --calibrate needs dev examples: pass --dev-shots N"
    assert "--plots" in one_line_error(bmtpt("evaluate", "--shots", "4", "--init", "random", "--plots"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
