"""How well each transferability indicator predicts the measured transfer (SPEC §5e).

An indicator is a square matrix over the task prompts (a prompt similarity, or neuron stimulation);
a transfer matrix holds a value per (source, target): zero-shot transfer relative to the target's own
prompt, and with --tune the relative error reduction over random-init prompt tuning. Over the pairs
source ≠ target where both are defined, pooled over every target and per target: Pearson's r with
its two-sided p-value (t = r sqrt((n − 2) / (1 − r²)), n − 2 degrees of freedom), and Spearman's ρ
(Pearson's r of the average ranks, ties sharing their mean rank) with the same t-test's p-value,
what scipy.stats.pearsonr and spearmanr report. Fewer than 3 pairs, or a constant side: undefined (NaN).

Only the standard library; the tests check the numbers against scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bmtpt_cli.experiments.paired import t_two_sided_p
from bmtpt_cli.experiments.transfer.matrix import RANDOM, Matrix
from bmtpt_cli.scoring.metrics import average_ranks, pearson_corr

NAN = float("nan")
MIN_PAIRS = 3  # a p-value needs n − 2 ≥ 1 degrees of freedom


def pearson(x: list[float], y: list[float]) -> float:
    """Pearson's r of two equally long samples (`scoring.metrics.pearson_corr`); NaN, not the metric's 0, for
    fewer than 2 values or a constant sample."""
    if len(x) != len(y):
        raise ValueError(f"samples of different sizes ({len(x)} and {len(y)})")
    if len(x) < 2 or min(x) == max(x) or min(y) == max(y):  # checked exactly: a mean's round-off is no spread
        return NAN
    return pearson_corr(x, y)


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's ρ: Pearson's r of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def correlation_p_value(r: float, n: int) -> float:
    """Two-sided p-value of a correlation r over n pairs against 0: the t-test with n − 2 degrees of freedom."""
    if math.isnan(r) or n < MIN_PAIRS:
        return NAN
    if abs(r) >= 1.0:
        return 0.0
    return t_two_sided_p(r * math.sqrt((n - 2) / (1.0 - r * r)), n - 2)


@dataclass(frozen=True)
class Correlation:
    """Pearson's r and Spearman's ρ of n (indicator, transfer) pairs, with their two-sided p-values."""

    n: int
    pearson: float
    pearson_p: float
    spearman: float
    spearman_p: float

    def to_dict(self) -> dict:
        """The fields as a JSON-able dict (NaN stays NaN: the writer makes it null)."""
        return {"n": self.n, "pearson_r": self.pearson, "pearson_p": self.pearson_p,
                "spearman_rho": self.spearman, "spearman_p": self.spearman_p}


def correlate(x: list[float], y: list[float]) -> Correlation:
    """`Correlation` of the pairs where both x and y are finite (fewer than 3 such pairs: NaN figures)."""
    pairs = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    n = len(pairs)
    if n < MIN_PAIRS:
        return Correlation(n, NAN, NAN, NAN, NAN)
    xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    r, rho = pearson(xs, ys), spearman(xs, ys)
    return Correlation(n, r, correlation_p_value(r, n), rho, correlation_p_value(rho, n))


Point = tuple[str, float, float]
"""(source, indicator value, transfer value) of one pair."""


def transfer_points(indicator: Matrix, transfer: Matrix) -> dict[str, list[Point]]:
    """Per target (the transfer matrix's columns): each source ≠ target (not the random-init row) with
    its indicator and transfer values, where both are defined and the indicator covers both tasks."""
    points: dict[str, list[Point]] = {}
    for target in transfer.columns:
        column = []
        for source in transfer.rows:
            if source == target or source == RANDOM or source not in indicator.rows or target not in indicator.columns:
                continue
            x, y = indicator.value(source, target), transfer.value(source, target)
            if math.isfinite(x) and math.isfinite(y):
                column.append((source, x, y))
        points[target] = column
    return points


@dataclass
class IndicatorCorrelation:
    """One indicator against one transfer matrix: pooled over every target and per target."""

    indicator: str  # the indicator matrix's name, e.g. similarity_mean
    transfer: str  # the transfer matrix's name: zero_shot_relative or error_reduction
    overall: Correlation
    per_target: dict[str, Correlation]
    points: dict[str, list[Point]] = field(repr=False)  # target -> its pairs (what the scatter plots show)

    def mean_target_spearman(self) -> float:
        """The mean of the per-target ρ that are defined (NaN when none is)."""
        values = [c.spearman for c in self.per_target.values() if not math.isnan(c.spearman)]
        return math.fsum(values) / len(values) if values else NAN


def indicator_correlation(indicator: Matrix, transfer: Matrix) -> IndicatorCorrelation:
    """Correlate `indicator` with `transfer` over the pairs source ≠ target, pooled and per target."""
    points = transfer_points(indicator, transfer)
    pooled = [point for column in points.values() for point in column]
    per_target = {target: correlate([x for _, x, _ in column], [y for _, _, y in column]) for target, column in points.items()}
    overall = correlate([x for _, x, _ in pooled], [y for _, _, y in pooled])
    return IndicatorCorrelation(indicator.name, transfer.name, overall, per_target, points)


def correlations(indicators: list[Matrix], transfers: list[Matrix]) -> list[IndicatorCorrelation]:
    """Every indicator against every transfer matrix, each transfer's indicators ranked (`ranked`)."""
    return [row for transfer in transfers for row in ranked([indicator_correlation(i, transfer) for i in indicators])]


def ranked(rows: list[IndicatorCorrelation]) -> list[IndicatorCorrelation]:
    """The rows by pooled Spearman ρ, highest first (undefined last; ties keep their order)."""
    return sorted(rows, key=lambda row: (math.isnan(row.overall.spearman), -row.overall.spearman
                                         if not math.isnan(row.overall.spearman) else 0.0))
