"""The paired-comparison statistics against scipy and against brute-force enumeration."""

import itertools
import json
import math
import random
from collections import Counter
from fractions import Fraction

import pytest

from bmtpt_cli.experiments.paired import (
    Interval,
    PairedComparison,
    _resample_means,
    cluster_bootstrap_interval,
    compare_paired,
    solved_share,
    t_interval,
    t_quantile,
)

scipy_stats = pytest.importorskip("scipy.stats")
np = pytest.importorskip("numpy")


def _gauss(n, mean, std, seed):
    rng = random.Random(seed)
    return [rng.gauss(mean, std) for _ in range(n)]


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 39, 119, 1000])
@pytest.mark.parametrize("p", [0.025, 0.5, 0.9, 0.975, 0.995])
def test_t_quantile_matches_scipy(df, p):
    expected = scipy_stats.t.ppf(p, df)
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_t_quantile_is_symmetric_and_checks_p():
    assert t_quantile(0.1, 7) == -t_quantile(0.9, 7)
    for p in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(ValueError):
            t_quantile(p, 5)
    with pytest.raises(ValueError):
        t_quantile(0.9, 0)


@pytest.mark.parametrize("x", [
    [0.5, 1.25, -0.25, 2.0],
    [-3.1, -2.4, -2.9, -3.6, -1.8, -2.2],
    _gauss(40, -0.7, 2.0, seed=3),
    _gauss(120, 0.02, 0.05, seed=4),
])
def test_t_interval_matches_scipy(x):
    low, high = scipy_stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=scipy_stats.sem(x))
    interval = t_interval(x)
    assert interval.low == pytest.approx(low, abs=1e-9)
    assert interval.high == pytest.approx(high, abs=1e-9)
    low90, high90 = scipy_stats.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=scipy_stats.sem(x))
    assert (t_interval(x, level=0.9).low, t_interval(x, level=0.9).high) == pytest.approx((low90, high90), abs=1e-9)


def test_t_interval_small_and_constant_inputs():
    assert t_interval([]) is None
    assert t_interval([1.5]) is None
    assert t_interval([2.0, 2.0, 2.0]) == Interval(2.0, 2.0)


def test_bootstrap_with_singleton_clusters_matches_scipy():
    x = _gauss(40, 0.8, 1.5, seed=7)
    ours = cluster_bootstrap_interval(x, list(range(40)), resamples=20_000, seed=0)
    theirs = scipy_stats.bootstrap((np.array(x),), np.mean, method="percentile", confidence_level=0.95,
                                   n_resamples=20_000, random_state=0).confidence_interval
    # Monte Carlo error of a 2.5% percentile over 20 000 resamples is ~0.02 standard errors of the
    # mean per run (~0.03 for the difference of two runs), so 0.1 SE is over three sigmas.
    tolerance = 0.1 * scipy_stats.sem(x)
    assert abs(ours.low - theirs.low) < tolerance
    assert abs(ours.high - theirs.high) < tolerance


def test_bootstrap_is_seeded():
    x = _gauss(30, 0.3, 1.0, seed=8)
    clusters = [i % 3 for i in range(30)]
    first = cluster_bootstrap_interval(x, clusters, resamples=2000, seed=5)
    assert cluster_bootstrap_interval(x, clusters, resamples=2000, seed=5) == first
    assert cluster_bootstrap_interval(x, clusters, resamples=2000, seed=6) != first


def _exact_distribution(groups):
    """Distribution of the two-stage resample mean, by enumerating every ordered draw."""
    distribution = Counter()
    for drawn in itertools.product(groups, repeat=len(groups)):
        inner = [itertools.product(group, repeat=len(group)) for group in drawn]
        inner_weight = Fraction(1, math.prod(len(group) ** len(group) for group in drawn))
        for picks in itertools.product(*inner):
            values = [v for pick in picks for v in pick]
            distribution[round(sum(values) / len(values), 9)] += Fraction(1, len(groups) ** len(groups)) * inner_weight
    assert sum(distribution.values()) == 1
    return distribution


@pytest.mark.parametrize("differences,clusters", [
    ([1.0, 4.0], ["a", "b"]),
    ([0.0, 1.0, 10.0], ["a", "a", "b"]),
])
def test_resample_means_follow_the_exact_two_stage_distribution(differences, clusters):
    groups = [[d for d, c in zip(differences, clusters) if c == label] for label in dict.fromkeys(clusters)]
    exact = _exact_distribution(groups)
    resamples = 20_000
    seen = Counter(round(m, 9) for m in _resample_means(differences, clusters, resamples, random.Random(0)))
    assert set(seen) <= set(exact)
    for value, probability in exact.items():
        sd = math.sqrt(float(probability * (1 - probability)) / resamples)
        assert abs(seen[value] / resamples - float(probability)) < 5 * sd + 1e-12, value


def test_bootstrap_interval_of_two_single_pair_clusters():
    # Resample means: 1 (p=1/4), 2.5 (p=1/2), 4 (p=1/4); percentiles are read off those blocks.
    d, clusters = [1.0, 4.0], ["a", "b"]
    assert cluster_bootstrap_interval(d, clusters) == Interval(1.0, 4.0)
    assert cluster_bootstrap_interval(d, clusters, level=0.6) == Interval(1.0, 4.0)  # 20th/80th percentiles
    assert cluster_bootstrap_interval(d, clusters, level=0.4) == Interval(2.5, 2.5)  # 30th/70th percentiles


def test_clustering_widens_the_interval_when_clusters_differ():
    rng = random.Random(11)
    d = [mean + rng.gauss(0, 0.1) for mean in (-3.0, 0.0, 6.0) for _ in range(15)]
    clusters = [i // 15 for i in range(45)]
    clustered = cluster_bootstrap_interval(d, clusters, resamples=5000)
    independent = cluster_bootstrap_interval(d, list(range(45)), resamples=5000)
    assert clustered.high - clustered.low > 2 * (independent.high - independent.low)


def test_one_cluster_is_the_plain_bootstrap():
    x = _gauss(20, 1.0, 1.0, seed=9)
    interval = cluster_bootstrap_interval(x, ["only"] * 20, resamples=5000)
    plain = cluster_bootstrap_interval(x, list(range(20)), resamples=5000)
    assert interval.low == pytest.approx(plain.low, abs=0.1) and interval.high == pytest.approx(plain.high, abs=0.1)
    assert cluster_bootstrap_interval([1.0], ["a"]) is None


def test_compare_paired_separates_a_clear_effect():
    d = _gauss(40, 5.0, 1.0, seed=1)
    comparison = compare_paired("bmtpt", "zero-shot", d, [i % 4 for i in range(40)], resamples=2000)
    assert isinstance(comparison, PairedComparison)
    assert (comparison.pairs, comparison.clusters) == (40, 4)
    assert comparison.mean == pytest.approx(np.mean(d)) and comparison.std == pytest.approx(np.std(d, ddof=1))
    assert comparison.separated and comparison.t.excludes_zero() and comparison.bootstrap.excludes_zero()
    negative = compare_paired("a", "b", [-v for v in d], [i % 4 for i in range(40)], resamples=2000)
    assert negative.separated


def test_compare_paired_does_not_separate_noise():
    noise = _gauss(40, 0.0, 1.0, seed=2)
    centred = [v - sum(noise) / len(noise) for v in noise]
    comparison = compare_paired("a", "b", centred, [i % 5 for i in range(40)], resamples=2000)
    assert not comparison.separated
    assert not comparison.t.excludes_zero()


def test_to_dict_is_json_ready():
    comparison = compare_paired("a", "b", _gauss(10, 1.0, 1.0, seed=3), list(range(10)), resamples=500)
    data = json.loads(json.dumps(comparison.to_dict()))
    assert set(data) == {"method", "baseline", "pairs", "clusters", "mean", "std", "t", "bootstrap", "separated"}
    assert data["t"] == comparison.t.to_dict() and set(data["bootstrap"]) == {"low", "high"}
    single = compare_paired("a", "b", [0.5], ["s"]).to_dict()
    assert json.loads(json.dumps(single)) == {"method": "a", "baseline": "b", "pairs": 1, "clusters": 1, "mean": 0.5,
                                              "std": None, "t": None, "bootstrap": None, "separated": False}


def test_solved_share():
    assert solved_share([0.2, 0.5, 0.7, 0.9], 0.5) == 0.75  # 0.5 itself counts as solved
    assert solved_share([0.1], 0.5) == 0.0
    with pytest.raises(ValueError):
        solved_share([], 0.5)


@pytest.mark.parametrize("call", [
    lambda: cluster_bootstrap_interval([1.0, 2.0], ["a"]),
    lambda: compare_paired("a", "b", [1.0, 2.0, 3.0], ["a", "b"]),
    lambda: cluster_bootstrap_interval([1.0, 2.0], ["a", "b"], level=1.0),
    lambda: t_interval([1.0, 2.0], level=0.0),
    lambda: compare_paired("a", "b", [1.0, 2.0], ["a", "b"], level=1.5),
    lambda: cluster_bootstrap_interval([1.0, 2.0], ["a", "b"], resamples=0),
    lambda: t_interval([1.0, math.nan]),
    lambda: cluster_bootstrap_interval([1.0, math.nan], ["a", "b"]),
    lambda: compare_paired("a", "b", [math.nan, 1.0], ["a", "b"]),
    lambda: compare_paired("a", "b", [], []),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
