"""Scatter plots of one transferability indicator against the measured transfer (SPEC §5e; SPoT's figure).

One PNG per indicator: for each transfer matrix correlated with it, a block of panels, the first with
every (source, target) pair, then one per target with its sources as labelled points; the indicator on
x, the transfer on y, a least-squares line where Pearson's r is defined, n, r and ρ in each panel's
title, and the indicator's notes as the caption. matplotlib's Agg canvas, imported only when a plot is drawn.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from bmtpt_cli.runtime.files import atomic_write
from bmtpt_cli.experiments.transfer.correlation import Correlation, IndicatorCorrelation, Point
from bmtpt_cli.experiments.transfer.matrix import Matrix

COLUMNS = 4  # panels per row


def write_scatter(path: Path, rows: list[IndicatorCorrelation], matrices: dict[str, Matrix], *, dpi: int = 100) -> None:
    """Draw one indicator's `rows` (one per transfer matrix) as scatter panels and write them to `path` (PNG)."""
    figure = scatter_figure(rows, matrices)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))


def _panels(row: IndicatorCorrelation) -> list[tuple[str, list[Point], Correlation, bool]]:
    """(title, points, correlation, label the points) per panel: all pairs first, then each target."""
    pooled = [point for column in row.points.values() for point in column]
    return [("all pairs", pooled, row.overall, False)] + [
        (f"target {target}", row.points[target], row.per_target[target], True) for target in row.points
    ]


def scatter_figure(rows: list[IndicatorCorrelation], matrices: dict[str, Matrix]):
    """The matplotlib `Figure` of one indicator against each transfer matrix in `rows`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    blocks = [_panels(row) for row in rows]
    grid_rows = sum(math.ceil(len(panels) / COLUMNS) for panels in blocks)
    columns = min(COLUMNS, max(len(panels) for panels in blocks))
    figure = Figure(figsize=(3.4 * columns, 3.0 * grid_rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    indicator = matrices[rows[0].indicator]
    figure.suptitle(textwrap.fill(f"{indicator.title} vs transfer", 40 * columns), fontsize=10)
    at = 0
    for row, panels in zip(rows, blocks):
        transfer = matrices[row.transfer]
        for index, (title, points, correlation, labelled) in enumerate(panels):
            axes = figure.add_subplot(grid_rows, columns, at + index + 1)
            _draw(axes, points, correlation, labelled)
            axes.set_title(f"{title}\n{_figures(correlation)}", fontsize=8)
            axes.set_xlabel(textwrap.fill(indicator.unit, 40), fontsize=7)
            axes.set_ylabel(textwrap.fill(transfer.unit, 30), fontsize=7)
            axes.tick_params(labelsize=7)
        at += math.ceil(len(panels) / COLUMNS) * columns
    if indicator.notes:  # the chance-level caveat on `tiny`, the undefined pairs of a length-bound measure
        figure.supxlabel("\n".join(textwrap.fill(note, 45 * columns) for note in indicator.notes), fontsize=8)
    return figure


def _draw(axes, points: list[Point], correlation: Correlation, labelled: bool) -> None:
    """The points (labelled with their source task where `labelled`) and, where r is defined, the least-squares line."""
    if not points:
        axes.text(0.5, 0.5, "no defined pairs", ha="center", va="center", transform=axes.transAxes, fontsize=8)
        return
    xs, ys = [x for _, x, _ in points], [y for _, _, y in points]
    axes.scatter(xs, ys, s=18, color="#1f77b4", zorder=3)
    if labelled:
        for source, x, y in points:
            axes.annotate(source, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6)
    if not math.isnan(correlation.pearson):
        mean_x, mean_y = math.fsum(xs) / len(xs), math.fsum(ys) / len(ys)
        slope = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / math.fsum((x - mean_x) ** 2 for x in xs)
        low, high = min(xs), max(xs)
        axes.plot([low, high], [mean_y + slope * (low - mean_x), mean_y + slope * (high - mean_x)], color="#d62728",
                  linewidth=1, zorder=2)


def _figures(correlation: Correlation) -> str:
    """`n = 6, r = 0.41, ρ = 0.37` (undefined figures as n/a)."""
    def shown(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.2f}"

    return f"n = {correlation.n}, r = {shown(correlation.pearson)}, ρ = {shown(correlation.spearman)}"
