"""The few-shot grid's plot: score against k, one line per method, error bars = std over seeds.

One panel for the overall average and one per task, drawn with matplotlib's Agg canvas (no
display, no global backend switch), imported only when a plot is written.
"""

from __future__ import annotations

from pathlib import Path

from bmtpt_cli.evaluation.tables import AVERAGE
from bmtpt_cli.runtime.files import atomic_write

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
STYLES = ("-", "--", "-.", ":")


def write_plot(path: Path, table: dict, *, title: str) -> None:
    """Write `table` (from `tables.build_table`) as a PNG of score against k, atomically; each method's
    points are shifted a little along the log axis so that methods with equal scores stay visible."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [c for c in table["columns"] if c["name"] == AVERAGE] + [c for c in table["columns"] if c["metric"] != AVERAGE]
    if len(shown) == 2:  # one task: its panel is the average's
        shown = shown[:1]
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    figure = Figure(figsize=(4.2 * cols, 3.4 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    shots = [block["shots"] for block in table["blocks"]]
    methods = [row["method"] for row in table["blocks"][0]["rows"]]
    for axis, column in zip(axes, shown):
        for position, method in enumerate(methods):
            cells = [next(r for r in block["rows"] if r["method"] == method)["cells"][column["name"]] for block in table["blocks"]]
            points = [(k, c["mean"], c["std"] or 0.0) for k, c in zip(shots, cells) if c["mean"] is not None]
            if points:
                xs, ys, errors = zip(*points)
                shift = 2 ** (0.04 * (position - (len(methods) - 1) / 2))  # methods that coincide stay visible
                axis.errorbar([x * shift for x in xs], ys, yerr=errors, marker=MARKERS[position % len(MARKERS)],
                              linestyle=STYLES[position % len(STYLES)], capsize=3, label=method, color=f"C{position}")
        name = "average over tasks" if column["name"] == AVERAGE else f"{column['name']} ({column['metric']})"
        axis.set_title(name)
        axis.set_xscale("log", base=2)
        axis.set_xticks(shots, [str(k) for k in shots])
        axis.minorticks_off()
        axis.set_xlabel("k (training examples per task)")
        axis.set_ylabel("score (points)")
        axis.grid(alpha=0.3)
    for axis in axes[len(shown):]:
        axis.set_visible(False)
    axes[0].legend(title="method", fontsize="small")
    figure.suptitle(title)
    atomic_write(Path(path), lambda tmp: figure.savefig(tmp, format="png", dpi=110))
