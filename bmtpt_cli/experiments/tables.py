"""The few-shot grid's table (the paper's Table 2, SPEC §4): one block per k, a row per method,
a column per task, per-benchmark averages and the overall average; mean ± std over seeds, in points.

Pure functions of the `results.jsonl` rows of `bmtpt fewshot` (`experiments/grid.py`): `build_table`
aggregates them, `table_markdown` and `table_csv` lay the result out. The table shows the main
metric, or (`fewshot --metric`) a calibration figure each row records (`QUANTITIES`).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import zlib
from dataclasses import dataclass

from bmtpt_cli.experiments.paired import compare_paired

@dataclass(frozen=True)
class Quantity:
    """What a table cell shows (`fewshot --metric`): the main metric in points, or a calibration figure of
    the row (`calibration` in `results.jsonl`, or its temperature-scaled part), with its unit."""

    name: str  # the --metric value
    label: str  # in words, for titles and notes
    unit: str  # the table's unit, as its header and report say it
    short_unit: str  # the unit of a paired difference
    decimals: int  # shown in table.md
    bounds: tuple[float, float] | None  # the quantity's range (None: the task metric's)
    lower_is_better: bool
    field: str | None = None  # the calibration figure (None: the main metric)
    scaled: bool = False  # the temperature-scaled figure (`calibration.scaled`)
    scale: float = 1.0  # shown as the figure × scale


MAIN = "main"
_SCALED = " after temperature scaling"
QUANTITIES = {quantity.name: quantity for quantity in (
    Quantity(MAIN, "score", "points (metric × 100)", "points", 1, None, False, scale=100.0),
    *(quantity for scaled in (False, True) for quantity in (
        Quantity("ece" + "-scaled" * scaled, "ECE" + _SCALED * scaled,
                 "points (ECE × 100, 15 equal-width bins" + ", scaled" * scaled + "; lower is better)", "points", 1,
                 (0.0, 100.0), True, "ece", scaled, 100.0),
        Quantity("nll" + "-scaled" * scaled, "NLL" + _SCALED * scaled,
                 "nats per example (NLL of the gold label" + ", scaled" * scaled + "; lower is better)", "nats", 3,
                 (0.0, math.inf), True, "nll", scaled),
        Quantity("brier" + "-scaled" * scaled, "Brier score" + _SCALED * scaled,
                 "Brier score (multi-class, 0–2" + ", scaled" * scaled + "; lower is better)", "Brier", 3,
                 (0.0, 2.0), True, "brier", scaled),
    )),
)}
"""`fewshot --metric` values: the main metric (the default) and the calibration figures, plain and scaled."""


def row_value(row: dict, quantity: Quantity) -> float | None:
    """A results row's value of `quantity` (main metric × 100, or its calibration figure × its scale);
    None where the row has none (a generated task's calibration, a row without --calibrate's temperature)."""
    if quantity.field is None:
        return quantity.scale * row["value"]
    entry = row.get("calibration") or {}
    if quantity.scaled:
        entry = entry.get("scaled") or {}
    value = entry.get(quantity.field) if isinstance(entry, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return quantity.scale * value


BENCHMARK_NAMES = {"glue": "GLUE", "superglue": "SuperGLUE", "mrqa": "MRQA", "others": "Others", "source12": "Source12", "demo": "demo"}
AVERAGE = "avg"


@dataclass(frozen=True)
class Column:
    """One table column: a task, a benchmark's average over its tasks, or the average over all tasks."""

    name: str  # the task, "GLUE avg", or "avg"
    tasks: tuple[str, ...]  # the tasks it averages (one for a task column)
    metric: str  # the task's main metric, or "avg"


def columns_for(tasks: list[tuple[str, str, str]]) -> list[Column]:
    """The columns for `(task, benchmark, metric)` triples: the tasks grouped by benchmark (in the
    order given), then one average per benchmark when there are several, then the overall average."""
    benchmarks: dict[str, list[tuple[str, str]]] = {}
    for task, benchmark, metric in tasks:
        benchmarks.setdefault(benchmark, []).append((task, metric))
    columns = [Column(task, (task,), metric) for group in benchmarks.values() for task, metric in group]
    if len(benchmarks) > 1:
        columns += [Column(f"{BENCHMARK_NAMES.get(b, b)} {AVERAGE}", tuple(t for t, _ in group), AVERAGE)
                    for b, group in benchmarks.items()]
    columns.append(Column(AVERAGE, tuple(task for task, _, _ in tasks), AVERAGE))
    return columns


def build_table(
    rows: list[dict], *, methods: list[str], shots: list[int], tasks: list[tuple[str, str, str]], seeds: list[int],
    sources: dict[str, int] | None = None, solved_at: float | None = None, metric: str = MAIN,
) -> dict:
    """Aggregate result rows into the table's data, in points (×100), or (`metric`, `QUANTITIES`) a
    calibration figure of each row in its unit; a row without that figure counts as missing.

    A method's replicates are its (source posterior, seed) cells (`sources`: how many posteriors
    each method has; 1 when absent). A task cell is the mean and sample std over replicates of the
    task's main metric. An average cell first averages its tasks at each replicate (replicates where
    one of them is missing are left out), then takes the mean and std of those averages. `n` counts
    the replicates behind each cell; `per_seed` holds each one's value, keyed by the seed (`seed@source`
    when the method has several posteriors). With `solved_at` (a metric value, 0–1), `solved` is the
    share of the column's task cells that reach it.
    """
    quantity = QUANTITIES[metric]
    if solved_at is not None and quantity.field is not None:
        raise ValueError("solved_at counts cells whose main metric reaches a value: it needs metric 'main'")
    value = {}
    for r in rows:
        found = row_value(r, quantity)
        if found is not None:
            value[(r["method"], r.get("source", 0), r["k"], r["task"], r["seed"])] = found
    columns = columns_for(tasks)
    blocks = []
    for k in shots:
        block_rows = []
        for method in methods:
            count = (sources or {}).get(method, 1)
            cells = {}
            for column in columns:
                per_seed, task_values = {}, []
                for source in range(count):
                    for seed in seeds:
                        found = [value.get((method, source, k, task, seed)) for task in column.tasks]
                        if all(v is not None for v in found):
                            per_seed[replicate_name(seed, source, count)] = statistics.fmean(found)
                            task_values += found
                cells[column.name] = _cell(list(per_seed.values())) | {"per_seed": per_seed}
                if solved_at is not None:
                    cells[column.name]["solved"] = (sum(v >= 100 * solved_at for v in task_values) / len(task_values)
                                                    if task_values else None)
            block_rows.append({"method": method, "sources": count, "cells": cells})
        blocks.append({"shots": k, "rows": block_rows})
    return {
        "unit": quantity.unit,
        "quantity": quantity.name,
        "lower_is_better": quantity.lower_is_better,
        "decimals": quantity.decimals,
        "columns": [{"name": c.name, "tasks": list(c.tasks), "metric": c.metric} for c in columns],
        "blocks": blocks,
        "solved_at": solved_at,
    }


def replicate_name(seed: int, source: int, sources: int) -> str:
    """How `per_seed` names a replicate: the seed, or `seed@source` for a method with several posteriors."""
    return str(seed) if sources == 1 else f"{seed}@{source}"


def _replicate(name: str) -> tuple[int, int]:
    """(seed, source) from `replicate_name`'s text."""
    seed, _, source = name.partition("@")
    return int(seed), int(source or 0)


def paired_comparisons(table: dict, baseline: str, *, resamples: int = 10_000) -> list[dict]:
    """Every method against `baseline`, per k and column: the paired differences (method − baseline at
    the same seed and source posterior; a side with one posterior pairs it with each of the other's)
    and their mean with a 95% t interval and a bootstrap interval clustered by source posterior
    (`evaluation.paired`). Each entry holds its pairs."""
    comparisons = []
    for block in table["blocks"]:
        by_method = {row["method"]: row for row in block["rows"]}
        if baseline not in by_method:
            return []
        base = by_method[baseline]
        for row in block["rows"]:
            if row["method"] == baseline:
                continue
            for column in table["columns"]:
                mine = {_replicate(name): v for name, v in row["cells"][column["name"]]["per_seed"].items()}
                theirs = {_replicate(name): v for name, v in base["cells"][column["name"]]["per_seed"].items()}
                pairs = []
                for source in range(max(row["sources"], base["sources"])):
                    for seed in sorted({seed for seed, _ in mine}):
                        a = mine.get((seed, source if row["sources"] > 1 else 0))
                        b = theirs.get((seed, source if base["sources"] > 1 else 0))
                        if a is not None and b is not None:
                            pairs.append({"seed": seed, "source": source, "method": a, "baseline": b, "difference": a - b})
                if not pairs:
                    continue
                result = compare_paired(row["method"], baseline, [p["difference"] for p in pairs],
                                        [p["source"] for p in pairs], resamples=resamples,
                                        seed=zlib.crc32(f"{block['shots']}/{row['method']}/{column['name']}".encode()))
                comparisons.append({"shots": block["shots"], "column": column["name"], **result.to_dict(), "pairs": pairs})
    return comparisons


def _cell(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}


def format_cell(cell: dict, decimals: int = 1) -> str:
    """`54.7 ± 1.2` (one decimal, as the paper; NLL and Brier: three); the mean alone for one seed;
    `–` for no value."""
    if cell["mean"] is None:
        return "–"
    if cell["std"] is None:
        return f"{cell['mean']:.{decimals}f}"
    return f"{cell['mean']:.{decimals}f} ± {cell['std']:.{decimals}f}"


def format_difference(comparison: dict, decimals: int = 1) -> str:
    """`+3.1 [−0.5, +6.8] [−1.0, +7.2] ✓`: the mean difference, its t and clustered-bootstrap 95%
    intervals, and ✓ when both exclude 0 (one pair: the difference alone)."""
    text = f"{comparison['mean']:+.{decimals}f}"
    for name in ("t", "bootstrap"):
        interval = comparison[name]
        if interval is not None:
            text += f" [{interval['low']:+.{decimals}f}, {interval['high']:+.{decimals}f}]"
    return text + (" ✓" if comparison["separated"] else "")


def table_markdown(table: dict, *, title: str, notes: list[str], comparisons: list[dict] | None = None) -> str:
    """The table as Markdown: a title, notes (one line each), then one block per k: mean ± std per
    method, then (with `comparisons`) each method's paired difference against the baseline, and
    (with the table's `solved_at`) the share of cells solved."""
    names = [column["name"] for column in table["columns"]]
    quantity = QUANTITIES[table.get("quantity", MAIN)]
    decimals = table.get("decimals", quantity.decimals)
    metrics = ", ".join(f"{c['name']} {c['metric']}" for c in table["columns"] if c["metric"] != AVERAGE)
    shown = (f"Main metrics: {metrics}." if quantity.field is None else
             f"Cells show {quantity.label}" + (" (T fitted per cell on its dev examples)" if quantity.scaled else "")
             + f", in {quantity.unit}, not the main metrics ({metrics}); – marks a cell "
             "without it (a generated task has no label distribution).")
    lines = [f"# {title}", "", *[f"{note}  " for note in notes], shown, ""]
    header = [" | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for block in table["blocks"]:
        lines += [f"## {block['shots']}-shot", "", "| method | " + header[0], header[1]]
        for row in block["rows"]:
            lines.append(f"| {row['method']} | " + " | ".join(format_cell(row["cells"][name], decimals) for name in names) + " |")
        lines.append("")
        mine = [c for c in comparisons or [] if c["shots"] == block["shots"]]
        if mine:
            baseline = mine[0]["baseline"]
            direction = "; lower is better, so a negative difference favours the method" if quantity.lower_is_better else ""
            lines += [f"Paired difference against {baseline} ({quantity.short_unit}{direction}; 95% intervals: t over the "
                      "pairs, then bootstrap clustered by source posterior; ✓ both exclude 0):", "",
                      f"| method − {baseline} | " + header[0], header[1]]
            for method in dict.fromkeys(c["method"] for c in mine):
                found = {c["column"]: c for c in mine if c["method"] == method}
                lines.append(f"| {method} | " + " | ".join(format_difference(found[n], decimals) if n in found else "–"
                                                           for n in names) + " |")
            lines.append("")
        if table.get("solved_at") is not None:
            lines += [f"Share of cells solved (main metric ≥ {table['solved_at']:g}):", "", "| method | " + header[0], header[1]]
            for row in block["rows"]:
                shares = [row["cells"][n].get("solved") for n in names]
                lines.append(f"| {row['method']} | " + " | ".join("–" if v is None else f"{100 * v:.0f}%" for v in shares) + " |")
            lines.append("")
    return "\n".join(lines)


COMPARISON_PARTS = ("diff", "t low", "t high", "boot low", "boot high", "separated")


def table_csv(table: dict, comparisons: list[dict] | None = None) -> str:
    """The table as CSV: one line per (k, method); per column its mean, std and replicate count
    (points; with another `--metric` its unit, and the headers name it: `rte ece mean`), then (with
    `comparisons`) the paired difference against the baseline with its intervals, and (with
    `solved_at`) the share solved."""
    names = [column["name"] for column in table["columns"]]
    parts = ["mean", "std", "n"] + (list(COMPARISON_PARTS) if comparisons is not None else [])
    parts += ["solved"] if table.get("solved_at") is not None else []
    quantity = table.get("quantity", MAIN)
    shown = "" if quantity == MAIN else f" {quantity}"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["shots", "method", *[f"{name}{shown} {part}" for name in names for part in parts]])
    found = {(c["shots"], c["method"], c["column"]): c for c in comparisons or []}
    for block in table["blocks"]:
        for row in block["rows"]:
            values = []
            for name in names:
                cell = row["cells"][name]
                values += [_number(cell["mean"]), _number(cell["std"]), cell["n"]]
                if comparisons is not None:
                    c = found.get((block["shots"], row["method"], name))
                    values += ["", "", "", "", "", ""] if c is None else [
                        _number(c["mean"]), *(_number((c[i] or {}).get(end)) for i in ("t", "bootstrap") for end in ("low", "high")),
                        int(c["separated"])]
                if table.get("solved_at") is not None:
                    values.append(_number(cell.get("solved")))
            writer.writerow([block["shots"], row["method"], *values])
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
