"""Metrics against reference implementations (scikit-learn, scipy) and hand-computed values."""

import random

import pytest
from scipy import stats
from sklearn import metrics as skm

from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.metrics import (
    METRICS,
    compute_metrics,
    exact_match_score,
    normalize_answer,
    token_f1_score,
)

SEEDS = [0, 1, 2, 3, 7, 42]
WORDS = ("not_duplicate", "duplicate")
DIGITS = ("0", "1")
THREE = ("entailment", "contradiction", "neutral")
INVALID = ("maybe", "", "Duplicate")


def ex(target, label=None, answers=(), group=None):
    return TextExample(source="", target=target, label=label, answers=tuple(answers), group=group)


def random_classification(seed, label_words, invalid=INVALID):
    """Examples with random labels and predictions drawn from the labels plus some invalid strings."""
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    labels = [rng.randrange(len(label_words)) for _ in range(n)]
    examples = [ex(label_words[i], label=i) for i in labels]
    pool = list(label_words) + list(invalid)
    predictions = [
        e.target if rng.random() < 0.5 else rng.choice(pool) for e in examples
    ]
    return predictions, examples


def run(name, predictions, examples):
    value = METRICS[name](predictions, examples)
    assert isinstance(value, float)
    return value


# --- classification vs scikit-learn ---------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label_words", [WORDS, DIGITS, THREE])
def test_accuracy_macro_f1_and_mcc_match_sklearn(seed, label_words):
    predictions, examples = random_classification(seed, label_words)
    targets = [e.target for e in examples]
    assert run("accuracy", predictions, examples) == pytest.approx(skm.accuracy_score(targets, predictions))
    assert run("macro_f1", predictions, examples) == pytest.approx(
        skm.f1_score(targets, predictions, labels=sorted(set(targets)), average="macro", zero_division=0)
    )
    assert run("mcc", predictions, examples) == pytest.approx(skm.matthews_corrcoef(targets, predictions))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label_words", [WORDS, DIGITS, THREE])
def test_f1_is_the_positive_class_f1_of_sklearn(seed, label_words):
    predictions, examples = random_classification(seed, label_words)
    targets = [e.target for e in examples]
    positive = label_words[1]
    assert any(e.label == 1 for e in examples)
    expected = skm.f1_score(targets, predictions, labels=[positive], average="micro", zero_division=0)
    assert run("f1", predictions, examples) == pytest.approx(expected)
    assert run("multirc_f1a", predictions, examples) == pytest.approx(expected)


def test_f1_hand_computed_and_without_positive_examples():
    # TP = 2 (rows 0, 1), FP = 1 (row 2), FN = 2 (rows 3, 4: "no", and an invalid prediction)
    examples = [ex("yes", 1), ex("yes", 1), ex("no", 0), ex("yes", 1), ex("yes", 1), ex("no", 0)]
    predictions = ["yes", "yes", "yes", "no", "Yes", "no"]
    assert run("f1", predictions, examples) == pytest.approx(4 / 7)
    # no example has label 1: there is no positive class, F1 is 0.0 even for predictions "yes"
    assert run("f1", ["yes", "no"], [ex("no", 0), ex("no", 0)]) == 0.0
    assert run("f1", ["no", "no"], [ex("yes", 1), ex("no", 0)]) == 0.0


def test_mcc_is_zero_when_undefined_and_one_when_perfect():
    examples = [ex("acceptable", 1), ex("unacceptable", 0), ex("acceptable", 1)]
    assert run("mcc", ["acceptable"] * 3, examples) == 0.0
    assert run("mcc", [e.target for e in examples], examples) == pytest.approx(1.0)
    assert run("mcc", ["unacceptable", "acceptable", "unacceptable"], examples) == pytest.approx(-1.0)


# --- regression vs scipy ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_pearson_and_spearman_match_scipy_with_ties_and_unparsable(seed):
    rng = random.Random(seed)
    n = rng.randint(8, 50)
    gold = [round(rng.randint(0, 25) * 0.2, 1) for _ in range(n)]  # STS-B: rounded to 0.2, many ties
    predicted = [round(min(5.0, max(0.0, g + rng.choice((-0.4, -0.2, 0.0, 0.2, 0.6)))), 1) for g in gold]
    predictions = [f"{p:.1f}" for p in predicted]
    predictions[rng.randrange(n)] = "not a number"  # scored as -1.0
    predicted_floats = [float(p) if p != "not a number" else -1.0 for p in predictions]
    examples = [ex(f"{g:.1f}") for g in gold]
    assert run("pearson", predictions, examples) == pytest.approx(stats.pearsonr(gold, predicted_floats)[0])
    assert run("spearman", predictions, examples) == pytest.approx(stats.spearmanr(gold, predicted_floats)[0])


def test_spearman_uses_average_ranks_for_ties():
    gold = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0]
    predicted = [0.5, 0.5, 3.0, 2.0, 4.0, 4.0, 1.0]
    examples = [ex(str(g)) for g in gold]
    value = run("spearman", [str(p) for p in predicted], examples)
    assert value == pytest.approx(stats.spearmanr(gold, predicted)[0])
    assert value != pytest.approx(stats.pearsonr(gold, predicted)[0])


def test_correlation_of_a_constant_side_is_zero():
    examples = [ex("1.0"), ex("2.0"), ex("3.6")]
    for name in ("pearson", "spearman"):
        assert run(name, ["2.0", "2.0", "2.0"], examples) == 0.0
        assert run(name, ["x", "y", "z"], examples) == 0.0  # all unparsable: all -1.0
        assert run(name, ["1.0", "2.0", "3.0"], [ex("2.4")] * 3) == 0.0
        assert run(name, ["1.0", "2.0", "3.6"], examples) == pytest.approx(1.0)


def test_non_finite_predictions_count_as_unparsable():
    examples = [ex("1.0"), ex("2.0"), ex("3.6"), ex("0.4")]
    for name in ("pearson", "spearman"):
        expected = run(name, ["-1.0", "2.0", "3.6", "1.0"], examples)
        assert run(name, ["nan", "2.0", "3.6", "1.0"], examples) == pytest.approx(expected)
        assert run(name, ["inf", "2.0", "3.6", "1.0"], examples) == pytest.approx(expected)


# --- SQuAD ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The  Cat!", "cat"),
        ("an apple a day", "apple day"),
        ("  Theater, anthem and THE end. ", "theater anthem and end"),  # articles only as words
        ("U.S.A.", "usa"),
        ("the", ""),
    ],
)
def test_normalize_answer_follows_squad_v1_1(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_token_f1_hand_computed():
    assert exact_match_score("The Cat!", "cat") == 1.0
    assert exact_match_score("the big cat", "cat") == 0.0
    # "big cat" vs "cat": 1 common token, precision 1/2, recall 1
    assert token_f1_score("the big cat", "cat") == pytest.approx(2 * (1 / 2 * 1) / (1 / 2 + 1))
    # multiset overlap: "cat cat dog" vs "cat dog dog": 2 common, P = R = 2/3
    assert token_f1_score("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)
    assert token_f1_score("dog", "cat") == 0.0
    assert token_f1_score("", "the") == 0.0  # the official v1.1 script: no common tokens -> 0
    assert exact_match_score("", "the") == 1.0


def test_squad_scores_take_the_max_over_references_and_average_over_examples():
    examples = [
        ex("dog", answers=("dog", "big cat")),  # "The big cat." matches the second answer: EM 1, F1 1
        ex("red dog", answers=("red dog", "cat")),  # "a cat sat": EM 0, F1 vs "cat" = 2/3
        ex("Paris"),  # no answers: the target is the reference; "paris" EM 1
        ex("New York City"),  # "york": P 1, R 1/3 -> F1 1/2
    ]
    predictions = ["The big cat.", "a cat sat", "paris", "york"]
    assert run("squad_em", predictions, examples) == pytest.approx((1 + 0 + 1 + 0) / 4)
    assert run("squad_f1", predictions, examples) == pytest.approx((1 + 2 / 3 + 1 + 1 / 2) / 4)


# --- MultiRC ----------------------------------------------------------------------------------


def multirc_set():
    """Three questions, options interleaved: q1 all right; q2 misses a true option (FN); q3 marks a
    false option true (FP)."""
    rows = [  # (group, label, prediction)
        ("q1", 1, "true"),
        ("q2", 0, "false"),
        ("q1", 0, "false"),
        ("q3", 1, "true"),
        ("q2", 1, "false"),
        ("q1", 1, "true"),
        ("q3", 0, "true"),
        ("q3", 0, "false"),
    ]
    examples = [ex(("false", "true")[label], label=label, group=group) for group, label, _ in rows]
    return [p for *_, p in rows], examples


def test_multirc_em_is_per_question():
    predictions, examples = multirc_set()
    assert run("multirc_em", predictions, examples) == pytest.approx(1 / 3)
    predictions[4] = "true"  # fixes q2
    assert run("multirc_em", predictions, examples) == pytest.approx(2 / 3)


def test_multirc_f1a_is_f1_over_all_options():
    predictions, examples = multirc_set()
    # TP = 3 (q1 x2, q3), FP = 1 (q3), FN = 1 (q2): 6 / (6 + 1 + 1)
    assert run("multirc_f1a", predictions, examples) == pytest.approx(0.75)


# --- ReCoRD -----------------------------------------------------------------------------------


def test_record_counts_a_duplicated_question_once():
    gold = ("Barack Obama", "Obama", "President Obama")
    examples = [
        # one question written out once per gold answer (the training-style duplication)
        *(ex(answer, group="q1") for answer in gold),
        ex("Paris", answers=("Paris",), group="q2"),  # "the city of Paris": EM 0, F1 2·(1/3)/(4/3) = 1/2
        ex("Berlin"),  # group None: a question of its own, wrong
    ]
    predictions = ["Obama", "Obama", "Obama", "the city of Paris", "London"]
    assert run("record_em", predictions, examples) == pytest.approx((1 + 0 + 0) / 3)
    assert run("record_f1", predictions, examples) == pytest.approx((1 + 1 / 2 + 0) / 3)
    # counted per example instead (the baselines' bug), q1 would weigh three times with EM 1/3
    assert run("squad_em", predictions, examples) == pytest.approx(1 / 5)


def test_record_question_score_is_the_max_over_its_examples():
    examples = [ex("Barack Obama", group="q"), ex("Obama", group="q")]
    # best pair: "president obama" vs "Barack Obama" -> "president obama" / "barack obama": F1 1/2
    assert run("record_f1", ["president obama", "nobody"], examples) == pytest.approx(1 / 2)
    assert run("record_em", ["president obama", "nobody"], examples) == 0.0
    assert run("record_em", ["nobody", "obama"], examples) == 1.0


# --- registry ---------------------------------------------------------------------------------


def test_registry_names():
    assert list(METRICS) == [
        "accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman", "multirc_f1a", "multirc_em",
        "squad_em", "squad_f1", "record_em", "record_f1",
    ]


def test_compute_metrics_returns_the_requested_names_in_order():
    examples = [ex("cat", group="a"), ex("dog", group="b")]
    names = ["squad_f1", "accuracy", "record_em"]
    result = compute_metrics(names, ["The cat", "dog"], examples)
    assert list(result) == names
    assert result == {"squad_f1": 1.0, "accuracy": 0.5, "record_em": 1.0}


def test_unknown_metric_is_a_user_error_listing_the_known_ones():
    with pytest.raises(BmtptError, match="unknown metric 'bleu'; choose one of accuracy, f1, macro_f1, mcc"):
        compute_metrics(["accuracy", "bleu"], ["a"], [ex("a")])


@pytest.mark.parametrize("name", list(METRICS))
def test_mismatched_or_empty_lists_are_bugs(name):
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        compute_metrics([name], ["1", "2"], [ex("1", 1)])
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        METRICS[name](["1", "2"], [ex("1", 1)])
    with pytest.raises(ValueError, match="no predictions"):
        compute_metrics([name], [], [])
    with pytest.raises(ValueError, match="no predictions"):
        METRICS[name]([], [])
