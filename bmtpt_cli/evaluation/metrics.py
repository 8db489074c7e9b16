"""Metrics over lists of predicted and reference strings, as fractions in [0, 1]."""

from __future__ import annotations

from typing import Callable

from bmtpt_cli.errors import BmtptError


def accuracy(predictions: list[str], references: list[str]) -> float:
    """Fraction of predictions that equal their reference exactly (a fraction, not a percent)."""
    _check_pairs(predictions, references)
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def f1(predictions: list[str], references: list[str], *, positive: str) -> float:
    """Binary F1 of the `positive` label: 2·TP / (2·TP + FP + FN); 0.0 when that is 0 / 0."""
    _check_pairs(predictions, references)
    tp = sum(p == positive and r == positive for p, r in zip(predictions, references))
    fp = sum(p == positive and r != positive for p, r in zip(predictions, references))
    fn = sum(p != positive and r == positive for p, r in zip(predictions, references))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


METRICS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "f1": f1,
}
"""Metric name (as in `Task.metric`) -> function(predictions, references, **options)."""


def compute_metric(name: str, predictions: list[str], references: list[str], **options) -> float:
    """The metric called `name`; options (e.g. f1's `positive`) are passed through."""
    if name not in METRICS:
        raise BmtptError(f"unknown metric {name!r}; choose one of {', '.join(sorted(METRICS))}")
    return METRICS[name](predictions, references, **options)


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("no predictions to score")
