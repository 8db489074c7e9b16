"""The few-shot grid's plot: score against k, one line per method, error bars = std over seeds; and
`evaluate --plots`' reliability diagrams (`write_reliability_diagram`).

One panel for the overall average, one per benchmark average (when the tasks span several
benchmarks, for a benchmark of two tasks or more), and one per task, all on one y-axis so that panels compare at a glance. Error bars
are clipped to the metric's range (no bar past 100 points), a dotted line marks chance where it is
known from the task registry (a uniform guess over the label words: 1/|labels| for accuracy, 0 for
correlations), the legend sits outside the panels, and long titles wrap. Drawn with matplotlib's
Agg canvas (no display, no global backend switch), imported only when a plot is written.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from bmtpt_cli.experiments.tables import AVERAGE, MAIN, QUANTITIES, Quantity
from bmtpt_cli.runtime.files import atomic_write

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
STYLES = ("-", "--", "-.", ":")
CORRELATIONS = ("mcc", "pearson", "spearman")  # range −100 … 100 points; a guess independent of the input scores 0
CHANCE_LABEL = "chance (uniform guess over the label words)"


def uniform_chance(metric: str, label_words: tuple[str, ...] | None) -> float | None:
    """A task's expected score, in points, for a guess drawn uniformly over its label words, where
    that does not depend on the data: 100/|labels| for accuracy, 0 for a correlation; None otherwise
    (F1 and generated answers depend on the class balance or the text)."""
    if metric in CORRELATIONS:
        return 0.0
    if metric == "accuracy" and label_words:
        return 100.0 / len(label_words)
    return None


def metric_range(metric: str) -> tuple[float, float]:
    """The range of a metric in points."""
    return (-100.0, 100.0) if metric in CORRELATIONS else (0.0, 100.0)


def write_plot(path: Path, table: dict, *, title: str, chance: dict[str, float | None] | None = None,
               caption: str | None = None):
    """Write `table` (from `tables.build_table`) as a PNG of score against k, atomically, and return
    the matplotlib `Figure`. `chance`: task → chance in points (None or missing: unknown, no line);
    `caption`: a line under the panels (e.g. that the model's scores are chance by design). Each
    method's points are shifted a little along the log axis so that methods with equal scores stay visible.
    A table of a calibration figure (`fewshot --metric`) is drawn in its unit and range, without chance lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    quantity = QUANTITIES[table.get("quantity", MAIN)]
    chance = (chance or {}) if quantity.field is None else {}
    margin = 2.0 if quantity.scale == 100.0 else 0.02  # the least room around the data: 2 points, or 0.02 nats / Brier
    task_metric = {c["name"]: c["metric"] for c in table["columns"] if c["metric"] != AVERAGE}
    overall = [c for c in table["columns"] if c["name"] == AVERAGE]
    benchmarks = [c for c in table["columns"] if c["metric"] == AVERAGE and c["name"] != AVERAGE and len(c["tasks"]) > 1]
    tasks = [c for c in table["columns"] if c["metric"] != AVERAGE]
    shown = overall + benchmarks + tasks
    if len(tasks) == 1:  # one task: its panel is the average's
        shown = tasks
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    width = 4.2 * cols
    figure = Figure(figsize=(width, 3.4 * rows + 1.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    shots = [block["shots"] for block in table["blocks"]]
    methods = [row["method"] for row in table["blocks"][0]["rows"]]
    spans, handles = [], {}
    for axis, column in zip(axes, shown):
        names = column.get("tasks") or [column["name"]]
        low = min(metric_range(task_metric.get(n, ""))[0] for n in names)
        high = max(metric_range(task_metric.get(n, ""))[1] for n in names)
        if quantity.bounds is not None:
            low, high = quantity.bounds
        for position, method in enumerate(methods):
            cells = [next(r for r in block["rows"] if r["method"] == method)["cells"][column["name"]] for block in table["blocks"]]
            points = [(k, c["mean"], c["std"] or 0.0) for k, c in zip(shots, cells) if c["mean"] is not None]
            if not points:
                continue
            xs, ys, errors = zip(*points)
            below = [y - max(low, y - e) for y, e in zip(ys, errors)]  # the bar clipped to the metric's range
            above = [min(high, y + e) - y for y, e in zip(ys, errors)]
            spans += [y - b for y, b in zip(ys, below)] + [y + a for y, a in zip(ys, above)]
            shift = 2 ** (0.04 * (position - (len(methods) - 1) / 2))  # methods that coincide stay visible
            drawn = axis.errorbar([x * shift for x in xs], ys, yerr=[below, above], marker=MARKERS[position % len(MARKERS)],
                                  linestyle=STYLES[position % len(STYLES)], capsize=3, label=method, color=f"C{position}")
            handles.setdefault(method, drawn)
        level = _chance(names, chance)
        if level is not None:
            line = axis.axhline(level, color="0.35", linestyle=":", linewidth=1.2, label=CHANCE_LABEL, zorder=1)
            handles.setdefault(CHANCE_LABEL, line)
            spans.append(level)
        axis.set_title(textwrap.fill(_panel_title(column, len(tasks), quantity.field is None), 40), fontsize=10)
        axis.set_xscale("log", base=2)
        axis.set_xticks(shots, [str(k) for k in shots])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        axis.tick_params(labelleft=True)
    for axis in axes[len(shown):]:
        axis.set_visible(False)
    if spans:
        low = min(spans)
        high = max(spans)
        pad = max(margin, 0.06 * (high - low))
        floor = min(metric_range(m)[0] for m in task_metric.values()) if task_metric else 0.0
        ceiling = 100.0
        if quantity.bounds is not None:
            floor, ceiling = quantity.bounds
        axes[0].set_ylim(max(low - pad, floor - margin), min(high + pad, ceiling + margin))
    for axis in axes[: len(shown)]:
        if axis.get_subplotspec().is_first_col():
            axis.set_ylabel(axis_label(quantity))
    labels = list(handles)
    keys = [handles[name] if name == CHANCE_LABEL else Line2D([], [], color=handles[name][0].get_color(),
            marker=handles[name][0].get_marker(), linestyle=handles[name][0].get_linestyle()) for name in labels]
    style = {"fontsize": "small", "title": "method", "title_fontsize": "small", "frameon": False}
    if len(shown) < len(axes):  # an empty slot of the grid holds the legend, clear of every panel
        spare = axes[-1]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(keys, [textwrap.fill(label, 30) for label in labels], loc="center", **style)
    else:
        figure.legend(keys, labels, loc="outside right upper", **style)
    note = "k (training examples per task, log scale) · error bars: ±1 std over seeds, clipped to the metric's range"
    if quantity.lower_is_better:
        note += " · lower is better"
    if caption:
        note += "\n" + caption
    figure.supxlabel("\n".join(textwrap.fill(line, int(width * 13)) for line in note.splitlines()), fontsize=9)
    figure.suptitle(textwrap.fill(title, int(width * 10)), fontsize=12)
    atomic_write(Path(path), lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    return figure


def write_reliability_diagram(path: Path, bins: list[dict], *, title: str, ece: float,
                              scaled_bins: list[dict] | None = None, scaled_ece: float | None = None,
                              temperature: float | None = None, caption: str | None = None):
    """Write a reliability diagram as a PNG, atomically, and return the matplotlib `Figure`: the accuracy
    of each confidence bin as bars (`scoring.calibration.reliability_bins`: equal-width bins, each bar
    spanning its bin), the diagonal of perfect calibration, the examples per bin in a panel below, the
    ECE (in points) in the title; with `scaled_bins` (temperature scaling, `temperature`) also the scaled
    bins' accuracy as a line at their bin centres and their counts beside the unscaled ones."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 6.2), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    width = bins[0]["upper"] - bins[0]["lower"]
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
    filled = [(c, b) for c, b in zip(centres, bins) if b["count"]]
    top.bar([c for c, _ in filled], [b["accuracy"] for _, b in filled], width=width, color="C0", alpha=0.75,
            edgecolor="C0", linewidth=0.8, label="accuracy per bin")
    top.plot([0, 1], [0, 1], color="0.35", linestyle="--", linewidth=1.2, label="perfect calibration")
    shown_scaled = [(c, b) for c, b in zip(centres, scaled_bins or []) if b["count"]]
    if scaled_bins is not None:
        top.plot([c for c, _ in shown_scaled], [b["accuracy"] for _, b in shown_scaled], color="C1", marker="o",
                 linewidth=1.4, label=f"temperature-scaled (T = {temperature:.3g})")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize="small", frameon=False)
    offset = width / 4 if scaled_bins is not None else 0.0
    part = width / 2 if scaled_bins is not None else width
    counts = bottom.bar([c - offset for c in centres], [b["count"] for b in bins], width=part, color="C0", alpha=0.75,
                        label="unscaled")
    bottom.bar_label(counts, labels=[str(b["count"]) if b["count"] else "" for b in bins], fontsize=7)
    if scaled_bins is not None:
        scaled_counts = bottom.bar([c + offset for c in centres], [b["count"] for b in scaled_bins], width=part,
                                   color="C1", alpha=0.75, label="scaled")
        bottom.bar_label(scaled_counts, labels=[str(b["count"]) if b["count"] else "" for b in scaled_bins], fontsize=7)
        bottom.legend(loc="upper left", fontsize="small", frameon=False)
    bottom.set_ylabel("examples")
    bottom.set_xlabel(f"confidence (largest label probability), {len(bins)} equal-width bins")
    bottom.set_ylim(0, max([b["count"] for b in bins + (scaled_bins or [])] + [1]) * 1.25)
    bottom.grid(alpha=0.3)
    heading = f"{title} · ECE {100 * ece:.1f}"
    if scaled_ece is not None:
        heading += f" → {100 * scaled_ece:.1f} after temperature scaling"
    figure.suptitle(textwrap.fill(heading + " (points)", 60), fontsize=11)
    if caption:
        figure.supxlabel(textwrap.fill(caption, 80), fontsize=8)
    atomic_write(Path(path), lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    return figure


def axis_label(quantity: Quantity) -> str:
    """The y-axis label of a plot of `quantity`: `score (points)`, `ECE (points)`, `NLL, scaled (nats)`, …."""
    if quantity.field is None:
        return "score (points)"
    name = {"ece": "ECE", "nll": "NLL", "brier": "Brier score"}[quantity.field] + (", scaled" if quantity.scaled else "")
    return name if quantity.short_unit == "Brier" else f"{name} ({quantity.short_unit})"


def _chance(tasks: list[str], chance: dict[str, float | None]) -> float | None:
    """The chance level of a panel: its task's, or the mean over an average's tasks (None if one is unknown)."""
    levels = [chance.get(task) for task in tasks]
    if not levels or any(level is None for level in levels):
        return None
    return math.fsum(levels) / len(levels)


def _panel_title(column: dict, task_count: int, main: bool = True) -> str:
    """A panel's title: the average, a benchmark's average, or the task with its main metric (`main`: the
    plot shows the main metrics; otherwise the task alone)."""
    if column["name"] == AVERAGE:
        return f"average over all {task_count} tasks"
    if column["metric"] == AVERAGE:
        benchmark = column["name"][: -len(AVERAGE)].strip()
        return f"{benchmark} average ({len(column['tasks'])} tasks)"
    return f"{column['name']} ({column['metric']})" if main else column["name"]
