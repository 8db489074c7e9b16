"""Paired comparisons of few-shot results: intervals for the mean of method − baseline differences.

The design is paired: each seed's k-shot subset is shared by every method, so the method's score
minus the baseline's at the same seed and source posterior is one pair, and the seed-to-seed
variation of the subsets cancels in the difference. Pairs are not all independent: the cells from
one source posterior (a "cluster") share its randomness, so the bootstrap resamples clusters first
and pairs within them second. The t interval treats the pairs as independent and is reported
alongside; a comparison is "separated" when both intervals exclude zero on the same side.

Only the standard library is used; the tests check the formulas against scipy.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes_zero(self) -> bool:
        """Whether zero lies outside the interval (entirely above or entirely below it)."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        """The endpoints as {"low": .., "high": ..}."""
        return {"low": self.low, "high": self.high}


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b), with y = 1 − x passed in to keep its precision."""
    if x <= 0.0 or y <= 0.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes' betacf)."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for aa in (m * (b - m) * x / ((qam + 2 * m) * (a + 2 * m)),
                   -(a + m) * (qab + m) * x / ((a + 2 * m) * (qap + 2 * m))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t ≥ 0: ½ · I_{df/(df+t²)}(df/2, ½)."""
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t statistic `t` with df degrees of freedom: P(|T| ≥ |t|)."""
    if not df > 0.0:
        raise ValueError(f"t_two_sided_p needs df > 0, got {df}")
    if math.isinf(t):
        return 0.0
    return min(1.0, 2.0 * _t_upper_tail(abs(t), df))


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with df degrees of freedom (0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p}")
    if not df > 0.0:
        raise ValueError(f"t_quantile needs df > 0, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    tail, low, high = 1.0 - p, 0.0, 1.0
    if tail == 0.5:
        return 0.0
    while _t_upper_tail(high, df) > tail:  # bracket the root: the tail falls as t grows
        low, high = high, 2.0 * high
    while high - low > 1e-14 * high:  # bisection to ~1e-14 relative
        mid = 0.5 * (low + high)
        if _t_upper_tail(mid, df) > tail:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _check(differences: list[float], level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if any(math.isnan(d) for d in differences):
        raise ValueError("differences contain NaN")


def t_interval(differences: list[float], level: float = 0.95) -> Interval | None:
    """mean ± t_{n-1}((1+level)/2) · s/√n over the differences (None for fewer than 2 of them)."""
    _check(differences, level)
    n = len(differences)
    if n < 2:
        return None
    mean, half = statistics.fmean(differences), statistics.stdev(differences) / math.sqrt(n)
    half *= t_quantile((1.0 + level) / 2.0, n - 1)
    return Interval(mean - half, mean + half)


def _resample_means(differences: list[float], clusters: list[object], resamples: int, rng: random.Random) -> list[float]:
    """Means of two-stage resamples: clusters with replacement, then pairs within each drawn cluster."""
    groups: dict[object, list[float]] = {}
    for value, cluster in zip(differences, clusters):
        groups.setdefault(cluster, []).append(value)
    members = list(groups.values())
    means = []
    for _ in range(resamples):
        total, count = 0.0, 0
        for group in rng.choices(members, k=len(members)):
            total += group[0] if len(group) == 1 else math.fsum(rng.choices(group, k=len(group)))
            count += len(group)
        means.append(total / count)
    return means


def _percentile(ordered: list[float], q: float) -> float:
    """numpy's default ("linear") percentile of sorted values, q in [0, 1]."""
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def cluster_bootstrap_interval(differences: list[float], clusters: list[object], *, level: float = 0.95,
                               resamples: int = 10_000, seed: int = 0) -> Interval | None:
    """Percentile bootstrap interval of the mean difference, resampling clusters with replacement and
    then pairs with replacement within each drawn cluster (one cluster: the plain bootstrap over pairs).
    Seeded with random.Random(seed), so the same input gives the same interval; None for fewer than 2 pairs."""
    _check(differences, level)
    if len(differences) != len(clusters):
        raise ValueError(f"{len(differences)} differences but {len(clusters)} cluster labels")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if len(differences) < 2:
        return None
    means = sorted(_resample_means(differences, clusters, resamples, random.Random(seed)))
    alpha = (1.0 - level) / 2.0
    return Interval(_percentile(means, alpha), _percentile(means, 1.0 - alpha))


@dataclass(frozen=True)
class PairedComparison:
    method: str
    baseline: str
    pairs: int
    clusters: int
    mean: float
    std: float | None
    t: Interval | None
    bootstrap: Interval | None

    @property
    def separated(self) -> bool:
        """Whether both intervals exist and both exclude zero on the same side."""
        if self.t is None or self.bootstrap is None:
            return False
        return (self.t.low > 0 and self.bootstrap.low > 0) or (self.t.high < 0 and self.bootstrap.high < 0)

    def to_dict(self) -> dict:
        """Every field, intervals as dicts or None, plus "separated" (JSON-ready)."""
        return {**asdict(self), "separated": self.separated}


def compare_paired(method: str, baseline: str, differences: list[float], clusters: list[object], *,
                   level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """The paired comparison of `method` against `baseline` from per-pair differences (method − baseline)."""
    if not differences:
        raise ValueError(f"no pairs to compare {method} against {baseline}")
    bootstrap = cluster_bootstrap_interval(differences, clusters, level=level, resamples=resamples, seed=seed)
    n, std = len(differences), statistics.stdev(differences) if len(differences) >= 2 else None
    return PairedComparison(method, baseline, n, len(set(clusters)), statistics.fmean(differences), std,
                            t_interval(differences, level), bootstrap)


def solved_share(values: list[float], threshold: float) -> float:
    """Share of values ≥ threshold (0..1); raises ValueError on an empty list."""
    if not values:
        raise ValueError("solved_share needs at least one value")
    return sum(1 for v in values if v >= threshold) / len(values)
