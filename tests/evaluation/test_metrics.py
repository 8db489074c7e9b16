"""Metrics against hand-computed values."""

import pytest

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.evaluation.metrics import METRICS, accuracy, compute_metric, f1


@pytest.mark.parametrize(
    "predictions, references, expected",
    [
        (["a", "b", "c", "d"], ["a", "b", "c", "d"], 1.0),
        (["a", "b", "c", "d"], ["a", "x", "c", "y"], 0.5),
        (["a", "b", "c"], ["x", "y", "z"], 0.0),
        (["entailment", "Entailment", "entailment "], ["entailment"] * 3, 1 / 3),  # exact match only
    ],
)
def test_accuracy_is_the_fraction_of_exact_matches(predictions, references, expected):
    assert accuracy(predictions, references) == pytest.approx(expected)
    assert compute_metric("accuracy", predictions, references) == pytest.approx(expected)


def test_f1_of_the_positive_label():
    # TP = 2 (rows 0, 1), FP = 1 (row 2), FN = 1 (row 3): F1 = 4 / (4 + 1 + 1)
    predictions = ["yes", "yes", "yes", "no", "no"]
    references = ["yes", "yes", "no", "yes", "no"]
    assert f1(predictions, references, positive="yes") == pytest.approx(2 / 3)
    # with "no" as positive: TP = 1, FP = 1, FN = 1
    assert compute_metric("f1", predictions, references, positive="no") == pytest.approx(0.5)
    assert f1(["no", "no"], ["no", "no"], positive="yes") == 0.0


def test_unknown_metric_is_a_user_error_listing_the_known_ones():
    assert set(METRICS) >= {"accuracy", "f1"}
    with pytest.raises(BmtptError, match="unknown metric 'pearson'; choose one of accuracy, f1"):
        compute_metric("pearson", ["a"], ["a"])


def test_mismatched_or_empty_lists_are_rejected():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no predictions"):
        accuracy([], [])
