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

Temperature scaling (Guo et al. 2017, `fit_temperature`): one T > 0 fitted on held-out examples by
minimising the NLL of softmax(scores / T); the scaled distributions keep every argmax, so accuracy
and every metric stay as they are, and only the calibration figures change (`temperature_scaling`).
`reliability_bins` gives the per-bin data of a reliability diagram, binned as the ECE bins.

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


def bin_index(confidence: float, bins: int = BINS) -> int:
    """The equal-width bin ((m−1)/bins, m/bins] that holds `confidence`, numbered from 0 (m − 1): a
    confidence exactly on an edge m/bins (as float64 writes m/bins) is in bin m, below it; 0 is in the
    first bin and anything above 1 in the last. The product confidence × bins is corrected by one
    where its rounding crosses an edge, so the bins are exactly those of the float edges m/bins."""
    m = min(bins, max(1, math.ceil(confidence * bins)))  # 1-based
    if m > 1 and confidence <= (m - 1) / bins:
        m -= 1
    elif m < bins and confidence > m / bins:
        m += 1
    return m - 1


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
            groups[bin_index(confidence, bins)].append(i)
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

FIGURES = ("ece", "ece_adaptive", "nll", "brier")
"""The calibration figures of one set of label distributions (what `calibration` returns besides its counts)."""

TEMPERATURE_RANGE = (0.01, 100.0)
"""The temperatures `fit_temperature` searches: from sharpening the scores ×100 to flattening them ×1/100."""

TEMPERATURE_GENERATED = "not defined: greedy generation gives no label scores to scale (use --decode rank)"
"""The temperature entry of a generated task's score (`evaluate --calibrate`, `fewshot --calibrate`)."""


def temperature_nll(scores: Sequence[dict[str, float]], golds: Sequence[str], temperature: float) -> float:
    """−(1/N) Σ_i log softmax(s_i / T)[gold_i], the NLL of the scores scaled by 1/T (float64, stable:
    log Σ_c exp((s_ic − max_c s_ic) / T) + (max_c s_ic − s_i,gold) / T per example)."""
    if not scores or len(scores) != len(golds):
        raise ValueError("the NLL needs one gold label per example, and at least one example")
    total = 0.0
    for own, gold in zip(scores, golds):
        top = max(own.values())
        total += math.log(sum(math.exp((score - top) / temperature) for score in own.values())) + (top - own[gold]) / temperature
    return total / len(scores)


def fit_temperature(scores: Sequence[dict[str, float]], golds: Sequence[str], *,
                    bounds: tuple[float, float] = TEMPERATURE_RANGE, tolerance: float = 1e-10) -> float:
    """The temperature T of temperature scaling (Guo et al. 2017) fitted on rank-scored examples (each
    its {candidate: score}) and their gold labels:

        T = argmin_{T ∈ [T_lo, T_hi]} −(1/N) Σ_i log softmax(s_i / T)[gold_i]    (`temperature_nll`)

    with [T_lo, T_hi] = `bounds` (0.01 … 100). The NLL is convex in β = 1/T (a log-sum-exp of linear
    functions of β minus a linear one), so it has one minimum along u = log T, found by a golden-section
    search over u ∈ [log T_lo, log T_hi] to |Δu| ≤ `tolerance` (float64, deterministic, no gradients);
    a bound is returned when the NLL is smallest there (e.g. separable examples, which want T → 0).
    When every example's candidates all tie, the NLL does not depend on T and T = 1. The scores may be
    sums or means of token log-probabilities (`--rank-score`): T rescales whichever they are."""
    if not scores or len(scores) != len(golds):
        raise ValueError("fitting a temperature needs one gold label per example, and at least one example")
    if any(gold not in own for own, gold in zip(scores, golds)):
        raise ValueError("fitting a temperature needs every gold label among its example's candidates")
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"temperature bounds must satisfy 0 < low < high, got {bounds}")
    if all(max(own.values()) == min(own.values()) for own in scores):
        return 1.0

    def nll(u: float) -> float:
        return temperature_nll(scores, golds, math.exp(u))

    a, b = math.log(low), math.log(high)
    shrink = (math.sqrt(5.0) - 1.0) / 2.0  # 1/φ
    c, d = b - shrink * (b - a), a + shrink * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > tolerance:
        if fc <= fd:  # the minimum lies in [a, d]
            b, d, fd = d, c, fc
            c = b - shrink * (b - a)
            fc = nll(c)
        else:  # in [c, b]
            a, c, fc = c, d, fd
            d = a + shrink * (b - a)
            fd = nll(d)
    found = math.exp((a + b) / 2.0)
    # a bound wins a tie: the NLL that is flat there (underflow at T → 0) is smallest at the bound itself
    best = min((temperature_nll(scores, golds, t), rank, t) for rank, t in enumerate((low, high, found)))
    return best[2]


def scaled_scores(scores: Sequence[dict[str, float]], temperature: float) -> list[dict[str, float]]:
    """Every example's candidate scores divided by T (T = 1 gives the scores themselves, bit for bit)."""
    if not temperature > 0:
        raise ValueError(f"a temperature must be positive, got {temperature}")
    return [{label: score / temperature for label, score in own.items()} for own in scores]


def temperature_scaling(fit_scores: Sequence[dict[str, float]], fit_golds: Sequence[str],
                        scores: Sequence[dict[str, float]], golds: Sequence[str], *, fitted_on: str,
                        bins: int = BINS) -> dict:
    """The temperature fitted on (`fit_scores`, `fit_golds`) and the calibration of (`scores`, `golds`)
    scaled by it: {"temperature": T, "scaled": {ece, ece_adaptive, nll, brier}, "fitted_on": "`fitted_on`
    (N examples)"}; or {"temperature": "not defined: …"} when either set has no label distribution (a
    gold answer that is none of its candidates, no examples)."""
    for what, own, own_golds in (("scored", scores, golds), ("fitting", fit_scores, fit_golds)):
        if not own:
            return {"temperature": f"not defined: no {what} examples"}
        if any(gold not in candidates for candidates, gold in zip(own, own_golds)):
            return {"temperature": f"not defined: a {what} example's gold answer is not one of its candidates"}
    temperature = fit_temperature(fit_scores, fit_golds)
    scaled = calibration([label_distribution(own) for own in scaled_scores(scores, temperature)], golds, bins=bins)
    return {"temperature": temperature, "scaled": {key: scaled[key] for key in FIGURES},
            "fitted_on": f"{fitted_on} ({len(fit_golds)} examples)"}


def confidence_and_correctness(scores: Sequence[dict[str, float]], golds: Sequence[str]) -> tuple[list[float], list[bool]]:
    """Each rank-scored example's confidence (its label distribution's largest probability) and whether
    its prediction (the argmax, the rank prediction) is its gold label."""
    confidences, correct = [], []
    for own, gold in zip(scores, golds):
        probabilities = label_distribution(own)
        predicted = max(probabilities, key=probabilities.get)
        confidences.append(probabilities[predicted])
        correct.append(predicted == gold)
    return confidences, correct


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> list[dict]:
    """A reliability diagram's data: per equal-width bin ((m−1)/bins, m/bins] (`bin_index`, the ECE's
    bins) its `lower` and `upper` edges, `count`, `accuracy` (share correct) and `confidence` (mean
    confidence), the last two None for an empty bin. Σ_m count_m/N · |accuracy_m − confidence_m| is the ECE."""
    if len(confidences) != len(correct):
        raise ValueError("reliability bins need one correctness per confidence")
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, confidence in enumerate(confidences):
        members[bin_index(confidence, bins)].append(i)
    rows = []
    for m, group in enumerate(members):
        rows.append({
            "lower": m / bins, "upper": (m + 1) / bins, "count": len(group),
            "accuracy": sum(bool(correct[i]) for i in group) / len(group) if group else None,
            "confidence": sum(confidences[i] for i in group) / len(group) if group else None,
        })
    return rows
