"""An annotated heatmap PNG of one transfer matrix (matplotlib's Agg canvas: no display needed).

Rows are the sources, columns the targets, every cell prints its value, a colour bar carries the
unit, and the title says what is shown. Sized by the matrix so that 12 × 12 stays readable.
matplotlib is imported only when a heatmap is drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

from bmtpt_cli.runtime.files import atomic_write
from bmtpt_cli.transfer.matrix import Matrix, finite

UNDEFINED = "n/a"


def write_heatmap(path: Path, matrix: Matrix, *, dpi: int = 120) -> None:
    """Draw `matrix` as an annotated heatmap and write it to `path` (PNG, atomically)."""
    figure = heatmap_figure(matrix)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))


def heatmap_figure(matrix: Matrix):
    """The matplotlib `Figure` of `matrix`: cells coloured by value and annotated, a colour bar, a title."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize, TwoSlopeNorm
    from matplotlib.figure import Figure

    rows, columns = len(matrix.rows), len(matrix.columns)
    values = np.array(matrix.values, dtype=np.float64).reshape(rows, columns)  # (rows, columns)
    masked = np.ma.masked_invalid(values)
    low, high = _limits(finite(matrix.values))
    if matrix.centre is not None:
        span = max(abs(low - matrix.centre), abs(high - matrix.centre)) or 1.0
        norm = TwoSlopeNorm(vcenter=matrix.centre, vmin=matrix.centre - span, vmax=matrix.centre + span)
        cmap_name = "RdBu"
    else:
        norm, cmap_name = Normalize(vmin=low, vmax=high), "viridis"
    import matplotlib

    cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="#d9d9d9")

    longest = max(len(name) for name in [*matrix.rows, *matrix.columns])
    width = 2.8 + 0.08 * longest + 0.85 * columns
    height = 1.8 + 0.08 * longest + 0.55 * rows
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(masked, cmap=cmap, norm=norm, aspect="auto")
    axes.set_xticks(range(columns), matrix.columns, rotation=40, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(rows), matrix.rows)
    axes.set_xlabel(matrix.column_label)
    axes.set_ylabel(matrix.row_label)
    axes.set_title(matrix.title, fontsize=10, wrap=True)
    fontsize = 9 if max(rows, columns) <= 8 else 7.5
    for i in range(rows):
        for j in range(columns):
            value = values[i, j]
            if math.isnan(value):
                axes.text(j, i, UNDEFINED, ha="center", va="center", fontsize=fontsize, color="black")
                continue
            red, green, blue, _ = cmap(norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            axes.text(j, i, format(value, matrix.cell_format), ha="center", va="center", fontsize=fontsize,
                      color="white" if dark else "black")
    bar = figure.colorbar(image, ax=axes, shrink=0.9)
    bar.set_label(matrix.unit)
    return figure


def _limits(values: list[float]) -> tuple[float, float]:
    """The colour scale's range: the finite values' min and max (widened when they are all equal)."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if low == high:
        return low - 1.0, high + 1.0
    return low, high
