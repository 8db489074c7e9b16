"""Task metrics over predicted strings and the `TextExample`s they answer (SPEC §4, §7).

Every registered metric has the signature `(predictions, examples) -> float` and returns a
fraction or a correlation (accuracy 0.83, not 83). The names in `METRICS` are the ones tasks list
in `Task.metrics`:

- `accuracy`: exact string match with the target (most classification tasks);
- `f1`: binary F1 of label id 1 (QQP "duplicate", MRPC "equivalent"; digit targets "1" too);
- `macro_f1`: F1 averaged over the gold classes (CB);
- `mcc`: Matthews correlation, multi-class form (CoLA, the GLUE convention);
- `pearson`, `spearman`: correlations of the predicted and gold scores (STS-B);
- `multirc_f1a`, `multirc_em`: F1 over all answer options and exact match per question (MultiRC);
- `squad_em`, `squad_f1`: the official SQuAD v1.1 scores, max over gold answers (SQuAD, MRQA);
- `record_em`, `record_f1`: the same scores counted once per question (ReCoRD).

Only the standard library is used, so the module imports fast and the formulas are visible here;
the tests check them against scikit-learn and scipy.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Callable, Iterable, Sequence

from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError

MetricFn = Callable[[list[str], list[TextExample]], float]
"""(predictions, examples) -> value; predictions[i] answers examples[i]."""

POSITIVE_LABEL = 1
"""Label id of the positive class for binary F1 (QQP duplicate, MRPC equivalent, MultiRC true)."""

UNPARSABLE_SCORE = -1.0
"""Value of a prediction that is not a number, for pearson/spearman (the baselines'
`string_to_float(default=-1)`)."""


# ---------------------------------------------------------------------------------------------
# Building blocks over plain strings


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions equal to their reference string exactly (case and spaces count)."""
    _check_pairs(predictions, references)
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def binary_f1(predictions: Sequence[str], references: Sequence[str], positive: str | None) -> float:
    """F1 of the class `positive`: 2·TP / (2·TP + FP + FN), 0.0 when that is 0 / 0.

    `positive=None` means there is no positive class: F1 is 0.0 (sklearn's zero_division=0).
    """
    _check_pairs(predictions, references)
    if positive is None:
        return 0.0
    return _class_f1(predictions, references, positive)


def macro_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean per-class F1 over the classes present in `references`.

    A prediction outside those classes is simply wrong (a false negative for its gold class).
    Same as `sklearn.metrics.f1_score(refs, preds, labels=sorted(set(refs)), average="macro",
    zero_division=0)`.
    """
    _check_pairs(predictions, references)
    classes = sorted(set(references))
    return sum(_class_f1(predictions, references, c) for c in classes) / len(classes)


def matthews_corrcoef(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Matthews correlation of categorical predictions vs references, multi-class form (Gorodkin
    2004, as `sklearn.metrics.matthews_corrcoef`); 0.0 when undefined (a constant side)."""
    _check_pairs(predictions, references)
    n = len(references)
    correct = sum(p == r for p, r in zip(predictions, references))
    gold_counts = Counter(references)
    pred_counts = Counter(predictions)
    gold_dot_pred = sum(count * pred_counts[label] for label, count in gold_counts.items())
    cov_gold_pred = correct * n - gold_dot_pred
    cov_pred_pred = n * n - sum(c * c for c in pred_counts.values())
    cov_gold_gold = n * n - sum(c * c for c in gold_counts.values())
    if cov_pred_pred * cov_gold_gold == 0:
        return 0.0
    return cov_gold_pred / math.sqrt(cov_gold_gold * cov_pred_pred)


def pearson_corr(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation of two equally long number lists; 0.0 if either side is constant."""
    _check_pairs(xs, ys)
    n = len(xs)
    mean_x = math.fsum(xs) / n
    mean_y = math.fsum(ys) / n
    dx = [x - mean_x for x in xs]
    dy = [y - mean_y for y in ys]
    sxx = math.fsum(d * d for d in dx)
    syy = math.fsum(d * d for d in dy)
    if sxx == 0.0 or syy == 0.0:
        return 0.0
    r = math.fsum(a * b for a, b in zip(dx, dy)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def spearman_corr(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman correlation: Pearson of the ranks, ties given their average rank (as
    `scipy.stats.spearmanr`); 0.0 if either side is constant."""
    _check_pairs(xs, ys)
    return pearson_corr(average_ranks(xs), average_ranks(ys))


def parse_score(text: str, default: float = UNPARSABLE_SCORE) -> float:
    """`text` as a float, or `default` if it is not a finite number (the baselines'
    `string_to_float`; "nan"/"inf" count as unparsable so a correlation stays defined)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 answer normalisation (official evaluate-v1.1.py): lowercase, drop
    `string.punctuation`, drop the articles a/an/the as whole words, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, gold: str) -> float:
    """1.0 if the normalised prediction equals the normalised gold answer, else 0.0 (SQuAD v1.1)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 of the normalised strings (SQuAD v1.1): multiset intersection of tokens;
    0.0 when nothing is shared, including when either side normalises to no tokens."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------------------------
# Registry metrics: (predictions, examples) -> float


def accuracy_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`accuracy`: fraction of predictions equal to `example.target` exactly."""
    _check_pairs(predictions, examples)
    return accuracy(predictions, [e.target for e in examples])


def f1_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`f1`: binary F1 of label id 1 (GLUE's F1 for QQP/MRPC).

    Gold is positive iff `example.label == 1`; a prediction is positive iff it equals the target
    text of label 1 (from any example with label 1). No example with label 1: 0.0.
    """
    _check_pairs(predictions, examples)
    positive = _positive_target(examples)
    if positive is None:
        return 0.0
    tp = fp = fn = 0
    for prediction, example in zip(predictions, examples):
        gold_pos = example.label == POSITIVE_LABEL
        pred_pos = prediction == positive
        tp += gold_pos and pred_pos
        fp += pred_pos and not gold_pos
        fn += gold_pos and not pred_pos
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def macro_f1_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`macro_f1`: F1 averaged over the gold target classes; other predictions count as wrong (CB)."""
    _check_pairs(predictions, examples)
    return macro_f1(predictions, [e.target for e in examples])


def mcc_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`mcc`: Matthews correlation of predictions vs targets as categories (CoLA, GLUE)."""
    _check_pairs(predictions, examples)
    return matthews_corrcoef(predictions, [e.target for e in examples])


def pearson_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`pearson`: Pearson r of predicted vs gold scores (STS-B); unparsable predictions are -1.0."""
    _check_pairs(predictions, examples)
    return pearson_corr([parse_score(p) for p in predictions], _gold_scores(examples))


def spearman_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`spearman`: Spearman rho (average ranks for ties) of predicted vs gold scores (STS-B);
    unparsable predictions are -1.0."""
    _check_pairs(predictions, examples)
    return spearman_corr([parse_score(p) for p in predictions], _gold_scores(examples))


def multirc_f1a_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`multirc_f1a`: binary F1 of label 1 ("true") over all answer options (SuperGLUE F1a)."""
    return f1_metric(predictions, examples)


def multirc_em_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`multirc_em`: fraction of questions (`example.group`) whose options are all predicted
    exactly right (SuperGLUE EM); an option with group None is a question of its own."""
    _check_pairs(predictions, examples)
    questions = _by_question(
        (e.group, float(p == e.target)) for p, e in zip(predictions, examples)
    )
    return sum(min(scores) for scores in questions) / len(questions)


def squad_em_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`squad_em`: mean over examples of the best normalised exact match over
    `example.references` (official SQuAD v1.1)."""
    _check_pairs(predictions, examples)
    return sum(_best(exact_match_score, p, e) for p, e in zip(predictions, examples)) / len(examples)


def squad_f1_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`squad_f1`: mean over examples of the best token F1 over `example.references`
    (official SQuAD v1.1)."""
    _check_pairs(predictions, examples)
    return sum(_best(token_f1_score, p, e) for p, e in zip(predictions, examples)) / len(examples)


def record_em_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`record_em`: SQuAD exact match, max over gold answers, counted once per question: examples
    sharing a group score the max over all their (prediction, references) pairs (ReCoRD's
    official script scores each question once; SPEC §7 lists doing otherwise as a bug)."""
    return _record_score(exact_match_score, predictions, examples)


def record_f1_metric(predictions: list[str], examples: list[TextExample]) -> float:
    """`record_f1`: SQuAD token F1, max over gold answers, counted once per question (as
    `record_em`)."""
    return _record_score(token_f1_score, predictions, examples)


METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy_metric,
    "f1": f1_metric,
    "macro_f1": macro_f1_metric,
    "mcc": mcc_metric,
    "pearson": pearson_metric,
    "spearman": spearman_metric,
    "multirc_f1a": multirc_f1a_metric,
    "multirc_em": multirc_em_metric,
    "squad_em": squad_em_metric,
    "squad_f1": squad_f1_metric,
    "record_em": record_em_metric,
    "record_f1": record_f1_metric,
}
"""Metric name (as in `Task.metrics`) -> function(predictions, examples)."""


INVALID_RULES = ("wrong", "negative")
"""How binary F1 counts a generated prediction that is no label word: `wrong` = the other class
than the gold one (ATTEMPT/T5's `f1_score_with_invalid`), `negative` = the negative class."""


def compute_metrics(
    names: Sequence[str],
    predictions: list[str],
    examples: list[TextExample],
    *,
    labels: Sequence[str] | None = None,
    invalid: str = "wrong",
) -> dict[str, float]:
    """{name: value} for each metric in `names`, in that order.

    `labels`: the task's label words in label-id order. With them, macro-F1 averages over every
    label (CB's three, as T5/ATTEMPT), and binary F1 counts a prediction that is none of them by
    the `invalid` rule (see `INVALID_RULES`). An unknown name is a `BmtptError` listing the known
    ones; predictions and examples of different lengths, or none at all, are a `ValueError`.
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise BmtptError(
            f"unknown metric {unknown[0]!r}; choose one of {', '.join(sorted(METRICS))}"
        )
    if invalid not in INVALID_RULES:
        raise BmtptError(f"unknown rule for invalid predictions {invalid!r}: use one of {', '.join(INVALID_RULES)}")
    _check_pairs(predictions, examples)
    values = {}
    for name in names:
        if name == "macro_f1" and labels:
            values[name] = macro_over(predictions, [e.target for e in examples], list(labels))
        elif name == "f1" and labels and len(labels) == 2 and invalid == "wrong":
            values[name] = f1_metric(_invalid_as_wrong(predictions, examples, labels), examples)
        else:
            values[name] = float(METRICS[name](predictions, examples))
    return values


def macro_over(predictions: Sequence[str], references: Sequence[str], classes: list[str]) -> float:
    """Mean per-class F1 over a fixed list of classes (a class absent from both sides scores 0).

    Same as `sklearn.metrics.f1_score(refs, preds, labels=classes, average="macro", zero_division=0)`.
    """
    _check_pairs(predictions, references)
    return sum(_class_f1(predictions, references, c) for c in classes) / len(classes)


def _invalid_as_wrong(predictions: Sequence[str], examples: Sequence[TextExample], labels: Sequence[str]) -> list[str]:
    """Each prediction that is no label word replaced by the label word of the other class."""
    return [
        p if p in labels or e.label is None else labels[1 - e.label]
        for p, e in zip(predictions, examples)
    ]


# ---------------------------------------------------------------------------------------------
# Private helpers

_PUNCTUATION = frozenset(string.punctuation)


def _check_pairs(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("no predictions to score")


def _class_f1(predictions: Sequence[str], references: Sequence[str], cls: str) -> float:
    tp = fp = fn = 0
    for p, r in zip(predictions, references):
        tp += p == cls and r == cls
        fp += p == cls and r != cls
        fn += p != cls and r == cls
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def _positive_target(examples: Iterable[TextExample]) -> str | None:
    return next((e.target for e in examples if e.label == POSITIVE_LABEL), None)


def _gold_scores(examples: Sequence[TextExample]) -> list[float]:
    scores = []
    for example in examples:
        try:
            scores.append(float(example.target))
        except ValueError:
            raise ValueError(f"gold target {example.target!r} is not a number") from None
    return scores


def average_ranks(values: Sequence[float]) -> list[float]:
    """Each value's rank from 1 (smallest), ties given the mean of the ranks they span (scipy's rankdata)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        rank = (start + end) / 2 + 1  # 1-based average rank of positions start..end
        for k in range(start, end + 1):
            ranks[order[k]] = rank
        start = end + 1
    return ranks


def _by_question(scored: Iterable[tuple[str | None, float]]) -> list[list[float]]:
    """Scores grouped by question in first-seen order; group None: a question of its own."""
    groups: dict[str, list[float]] = {}
    questions: list[list[float]] = []
    for group, score in scored:
        if group is None:
            questions.append([score])
        elif group in groups:
            groups[group].append(score)
        else:
            groups[group] = [score]
            questions.append(groups[group])
    return questions


def _best(score: Callable[[str, str], float], prediction: str, example: TextExample) -> float:
    return max(score(prediction, gold) for gold in example.references)


def _record_score(
    score: Callable[[str, str], float], predictions: list[str], examples: list[TextExample]
) -> float:
    _check_pairs(predictions, examples)
    questions = _by_question((e.group, _best(score, p, e)) for p, e in zip(predictions, examples))
    return sum(max(scores) for scores in questions) / len(questions)
