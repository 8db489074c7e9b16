"""An annotated heatmap PNG of one transfer matrix (matplotlib's Agg canvas: no display needed).

Rows are the sources, columns the targets, in one order (`transfer.run.one_order`), so a task's own
prompt sits on the diagonal, outlined; the random-init baseline, when there is one, is the last row,
set off by a gap. Every cell prints its value (a cell whose every generation was invalid prints
`— (n/n invalid)`, never 0), a colour bar carries the unit, the title says what is shown and the
matrix's notes (chance caveat, invalid generations) are its caption. Sized by the matrix so that
12 × 12 stays readable. matplotlib is imported only when a heatmap is drawn.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from bmtpt_cli.runtime.files import atomic_write
from bmtpt_cli.experiments.transfer.matrix import PER_CELL, RANDOM, Matrix, all_invalid, finite, invalid_text

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
    from matplotlib.patches import Rectangle

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
    axes.set_title(textwrap.fill(matrix.title, max(30, int(width * 11))), fontsize=10)
    fontsize = 9 if max(rows, columns) <= 8 else 7.5
    for i in range(rows):
        for j in range(columns):
            value = values[i, j]
            if matrix.mark_own and matrix.rows[i] == matrix.columns[j]:  # the target's own prompt
                axes.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="black", linewidth=2.2))
            if math.isnan(value):
                invalid = matrix.invalid and all_invalid(matrix.invalid[i][j], matrix.examples[i][j])
                text = invalid_text(matrix.invalid[i][j], matrix.examples[i][j]).replace(" (", "\n(") if invalid else UNDEFINED
                axes.text(j, i, text, ha="center", va="center", fontsize=fontsize * (0.8 if invalid else 1), color="black")
                continue
            red, green, blue, _ = cmap(norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            axes.text(j, i, format(value, matrix.cell_format), ha="center", va="center", fontsize=fontsize,
                      color="white" if dark else "black")
    if matrix.rows[-1] == RANDOM and rows > 1:  # the baseline row, set off from the source prompts
        axes.axhline(rows - 1.5, color="white", linewidth=4)
    bar = figure.colorbar(image, ax=axes, shrink=0.9)
    bar.set_label(matrix.unit)
    caption = [note for note in matrix.notes if not note.startswith(PER_CELL)]  # the per-cell list: CSV and JSON
    if matrix.mark_own and any(name in matrix.columns for name in matrix.rows):
        caption.append("outlined: the target's own prompt")
    if caption:
        figure.supxlabel("\n".join(textwrap.fill(line, max(40, int(width * 14))) for line in caption), fontsize=8)
    return figure


def _limits(values: list[float]) -> tuple[float, float]:
    """The colour scale's range: the finite values' min and max (widened when they are all equal)."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if low == high:
        return low - 1.0, high + 1.0
    return low, high
