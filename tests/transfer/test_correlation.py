"""Indicator–transfer correlations (SPEC §5e) against scipy, and which pairs they are computed over."""

from __future__ import annotations

import math
import random

import pytest
import scipy.stats

from bmtpt_cli.experiments.paired import t_two_sided_p
from bmtpt_cli.experiments.transfer.correlation import (
    average_ranks,
    correlate,
    correlations,
    indicator_correlation,
    pearson,
    spearman,
    transfer_points,
)
from bmtpt_cli.experiments.transfer.matrix import RANDOM, Matrix

NAN = float("nan")


def _samples(seed: int, n: int, ties: bool) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    x = [round(rng.gauss(0, 1), 1 if ties else 12) for _ in range(n)]
    y = [0.6 * a + rng.gauss(0, 1) for a in x]
    if ties:
        y = [round(b) for b in y]
    return x, y


@pytest.mark.parametrize("seed,n,ties", [(0, 5, False), (1, 12, False), (2, 30, True), (3, 3, False), (4, 9, True)])
def test_pearson_spearman_and_p_values_equal_scipy(seed, n, ties):
    x, y = _samples(seed, n, ties)
    got = correlate(x, y)
    r, p = scipy.stats.pearsonr(x, y)
    rho, p_rho = scipy.stats.spearmanr(x, y)
    assert got.n == n
    assert got.pearson == pytest.approx(r, abs=1e-12) and got.pearson_p == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert got.spearman == pytest.approx(rho, abs=1e-12) and got.spearman_p == pytest.approx(p_rho, rel=1e-9, abs=1e-15)


def test_average_ranks_share_ties():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert average_ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]
    assert average_ranks([0.2, -1.0]) == list(scipy.stats.rankdata([0.2, -1.0]))


def test_t_p_value_equals_scipys_t_distribution():
    for t, df in [(0.0, 1), (0.5, 1), (2.1, 3), (-3.7, 10), (12.0, 40), (1e-3, 2)]:
        assert t_two_sided_p(t, df) == pytest.approx(2 * scipy.stats.t.sf(abs(t), df), rel=1e-9, abs=1e-300)


def test_perfect_constant_and_too_few_pairs():
    exact = correlate([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.1])
    assert exact.spearman == 1.0 and exact.spearman_p == 0.0  # a perfect ranking: no t statistic needed
    constant = correlate([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert math.isnan(constant.pearson) and math.isnan(constant.spearman) and math.isnan(constant.pearson_p)
    assert math.fsum([0.1] * 3) / 3 != 0.1  # the mean of a constant sample is off by round-off …
    assert math.isnan(pearson([1.0, 2.0, 3.0], [0.1] * 3))  # … which must not pass for a spread (r = 0)
    few = correlate([1.0, 2.0, NAN, 4.0], [1.0, 3.0, 2.0, NAN])  # two finite pairs left
    assert few.n == 2 and math.isnan(few.pearson) and math.isnan(few.spearman)
    assert pearson([1.0, 2.0], [2.0, 1.0]) == -1.0 and spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == -1.0


def _square(name: str, names: list[str], value) -> Matrix:
    return Matrix(name=name, title=name, description="", unit="u", rows=names, columns=names,
                  values=[[value(a, b) for b in names] for a in names])


TASKS = ["t1", "t2", "t3", "s1", "s2"]
SIMILARITY = {"s1": 0.1, "s2": 0.4, "t1": 0.7, "t2": 0.2, "t3": 0.9}


def _transfer() -> Matrix:
    """Sources t1, t2, t3, s1, s2 (and the random-init row) on targets t1, t2, t3: hand-made values."""
    rows = [*TASKS, RANDOM]
    values = [[100.0 if row == column else 10 * SIMILARITY[row] + 3 * k + (2.0 if row == "s1" else 0.0)
               for k, column in enumerate(TASKS[:3])] for row in rows[:-1]] + [[0.0, 0.0, 0.0]]
    values[3][2] = NAN  # s1 → t3 undefined (e.g. every generation invalid)
    return Matrix(name="error_reduction", title="", description="", unit="%", rows=rows, columns=TASKS[:3], values=values)


def test_pairs_leave_out_the_diagonal_the_random_init_row_and_undefined_cells():
    indicator = _square("similarity_x", TASKS, lambda a, b: 1.0 if a == b else SIMILARITY[a] * SIMILARITY[b])
    points = transfer_points(indicator, _transfer())
    assert list(points) == ["t1", "t2", "t3"]
    assert [source for source, _, _ in points["t1"]] == ["t2", "t3", "s1", "s2"]
    assert [source for source, _, _ in points["t3"]] == ["t1", "t2", "s2"]  # s1 → t3 undefined, t3 → t3 own
    assert all(RANDOM not in [s for s, _, _ in column] for column in points.values())
    assert points["t2"][0] == ("t1", 0.7 * 0.2, 10 * 0.7 + 3)


def test_indicator_correlation_pools_every_target_and_correlates_each_apart():
    indicator = _square("similarity_x", TASKS, lambda a, b: 1.0 if a == b else SIMILARITY[a] * SIMILARITY[b])
    result = indicator_correlation(indicator, _transfer())
    pooled = [(x, y) for column in transfer_points(indicator, _transfer()).values() for _, x, y in column]
    r, p = scipy.stats.pearsonr([x for x, _ in pooled], [y for _, y in pooled])
    assert result.overall.n == 11 and result.overall.pearson == pytest.approx(r) and result.overall.pearson_p == pytest.approx(p)
    column = transfer_points(indicator, _transfer())["t1"]
    rho, _ = scipy.stats.spearmanr([x for _, x, _ in column], [y for _, _, y in column])
    assert result.per_target["t1"].spearman == pytest.approx(rho)
    assert result.mean_target_spearman() == pytest.approx(
        sum(c.spearman for c in result.per_target.values()) / 3)


def test_indicators_are_ranked_by_pooled_spearman_per_transfer_matrix():
    good = _square("good", TASKS, lambda a, b: SIMILARITY[a] + SIMILARITY[b])
    reversed_ = _square("reversed", TASKS, lambda a, b: -(SIMILARITY[a] + SIMILARITY[b]))
    flat = _square("flat", TASKS, lambda a, b: 0.5)  # constant: undefined, ranked last
    relative = _transfer()
    relative.name = "zero_shot_relative"
    rows = correlations([flat, reversed_, good], [relative, _transfer()])
    assert [(row.transfer, row.indicator) for row in rows] == [
        ("zero_shot_relative", "good"), ("zero_shot_relative", "reversed"), ("zero_shot_relative", "flat"),
        ("error_reduction", "good"), ("error_reduction", "reversed"), ("error_reduction", "flat"),
    ]
    assert rows[0].overall.spearman > 0 > rows[1].overall.spearman and math.isnan(rows[2].overall.spearman)
