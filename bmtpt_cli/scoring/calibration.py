"""Calibration of rank-scored predictions (issue 25): how well the label distribution's confidence
matches accuracy.

A rank-scored example has a score per candidate label (its log-likelihood, or that over its length
with `--rank-score mean`); its label distribution is the softmax of those scores, its prediction the
argmax (the rank prediction), its confidence the largest probability. Over N examples:

- ECE (Guo et al. 2017): Σ_m (|B_m| / N) · |accuracy(B_m) − mean confidence(B_m)|, with 15 equal-width
  bins ((m−1)/15, m/15] (`expected_calibration_error`), or 15 bins of equal counts, the examples
  sorted by confidence (`adaptive=True`; Nixon et al. 2019);
- NLL: −(1/N) Σ log p(gold);
- Brier score: (1/N) Σ_i Σ_c (p_ic − 1[c = gold_i])², the multi-class form of Brier (1950) (for two
  labels it is twice scikit-learn's `brier_score_loss`, which scores the positive class only).

Pure Python in float64; nothing here depends on the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BINS = 15


def label_distribution(scores: dict[str, float]) -> dict[str, float]:
    """The softmax of one example's candidate scores, in float64 (stable: the largest score subtracted)."""
    top = max(scores.values())
    weights = {label: math.exp(score - top) for label, score in scores.items()}
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], *, bins: int = BINS,
                               adaptive: bool = False) -> float:
    """ECE over equal-width bins ((m−1)/bins, m/bins], or with `adaptive` over `bins` groups of equal
    counts (the first `N mod bins` groups one larger) of the examples sorted by confidence."""
    if len(confidences) != len(correct) or not confidences:
        raise ValueError("ECE needs one correctness per confidence, and at least one example")
    total = len(confidences)
    if adaptive:
        order = sorted(range(total), key=lambda i: confidences[i])
        size, extra = divmod(total, bins)
        groups, start = [], 0
        for m in range(bins):
            stop = start + size + (1 if m < extra else 0)
            groups.append(order[start:stop])
            start = stop
    else:
        groups = [[] for _ in range(bins)]
        for i, confidence in enumerate(confidences):
            groups[min(bins - 1, max(0, math.ceil(confidence * bins) - 1))].append(i)
    error = 0.0
    for group in groups:
        if group:
            accuracy = sum(bool(correct[i]) for i in group) / len(group)
            confidence = sum(confidences[i] for i in group) / len(group)
            error += len(group) / total * abs(accuracy - confidence)
    return error


def calibration(distributions: Sequence[dict[str, float]], golds: Sequence[str], *, bins: int = BINS) -> dict[str, float]:
    """ECE (equal-width and adaptive bins), NLL and Brier score of label distributions against the gold labels."""
    confidences, correct, nll, brier = [], [], 0.0, 0.0
    for probabilities, gold in zip(distributions, golds):
        predicted = max(probabilities, key=probabilities.get)
        confidences.append(probabilities[predicted])
        correct.append(predicted == gold)
        nll -= math.log(max(probabilities[gold], 1e-300))
        brier += sum((p - (label == gold)) ** 2 for label, p in probabilities.items())
    count = len(golds)
    return {
        "ece": expected_calibration_error(confidences, correct, bins=bins),
        "ece_adaptive": expected_calibration_error(confidences, correct, bins=bins, adaptive=True),
        "nll": nll / count,
        "brier": brier / count,
        "bins": bins,
        "examples": count,
    }


def rank_calibration(scores: Sequence[dict[str, float]], golds: Sequence[str], *, bins: int = BINS) -> dict:
    """`calibration` of rank-scored examples (each its {candidate: score}); not defined, and said so,
    when an example's gold answer is none of its candidates (several references, free text)."""
    if not scores or any(gold not in own for own, gold in zip(scores, golds)):
        return {"undefined": "an example's gold answer is not one of its candidates"}
    return calibration([label_distribution(own) for own in scores], golds, bins=bins)


GENERATED = {"undefined": "greedy generation gives no distribution over the labels (use --decode rank)"}
"""The calibration entry of a generated task's score."""
