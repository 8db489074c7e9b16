"""The few-shot grid's table (the paper's Table 2, SPEC §4): one block per k, a row per method,
a column per task, per-benchmark averages and the overall average; mean ± std over seeds, in points.

Pure functions of the `results.jsonl` rows of `bmtpt fewshot` (`evaluation/grid.py`): `build_table`
aggregates them, `table_markdown` and `table_csv` lay the result out.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass

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
    rows: list[dict], *, methods: list[str], shots: list[int], tasks: list[tuple[str, str, str]], seeds: list[int]
) -> dict:
    """Aggregate result rows into the table's data, in points (×100).

    A task cell is the mean and sample std over seeds of the task's main metric. An average cell
    first averages its tasks at each seed (seeds where one of them is missing are left out), then
    takes the mean and std of those per-seed averages. `n` counts the seeds behind each cell.
    """
    value = {(r["method"], r["k"], r["task"], r["seed"]): 100 * r["value"] for r in rows}
    columns = columns_for(tasks)
    blocks = []
    for k in shots:
        block_rows = []
        for method in methods:
            cells = {}
            for column in columns:
                per_seed = {}
                for seed in seeds:
                    found = [value.get((method, k, task, seed)) for task in column.tasks]
                    if all(v is not None for v in found):
                        per_seed[str(seed)] = statistics.fmean(found)
                cells[column.name] = _cell(list(per_seed.values())) | {"per_seed": per_seed}
            block_rows.append({"method": method, "cells": cells})
        blocks.append({"shots": k, "rows": block_rows})
    return {
        "unit": "points (metric × 100)",
        "columns": [{"name": c.name, "tasks": list(c.tasks), "metric": c.metric} for c in columns],
        "blocks": blocks,
    }


def _cell(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}


def format_cell(cell: dict) -> str:
    """`54.7 ± 1.2` (one decimal, as the paper); the mean alone for one seed; `–` for no value."""
    if cell["mean"] is None:
        return "–"
    if cell["std"] is None:
        return f"{cell['mean']:.1f}"
    return f"{cell['mean']:.1f} ± {cell['std']:.1f}"


def table_markdown(table: dict, *, title: str, notes: list[str]) -> str:
    """The table as Markdown: a title, notes (one line each), then one block per k."""
    names = [column["name"] for column in table["columns"]]
    metrics = ", ".join(f"{c['name']} {c['metric']}" for c in table["columns"] if c["metric"] != AVERAGE)
    lines = [f"# {title}", "", *[f"{note}  " for note in notes], f"Main metrics: {metrics}.", ""]
    for block in table["blocks"]:
        lines += [f"## {block['shots']}-shot", "", "| method | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]
        for row in block["rows"]:
            lines.append(f"| {row['method']} | " + " | ".join(format_cell(row["cells"][name]) for name in names) + " |")
        lines.append("")
    return "\n".join(lines)


def table_csv(table: dict) -> str:
    """The table as CSV: one line per (k, method); per column its mean, std and seed count (points)."""
    names = [column["name"] for column in table["columns"]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["shots", "method", *[f"{name} {part}" for name in names for part in ("mean", "std", "n")]])
    for block in table["blocks"]:
        for row in block["rows"]:
            values = []
            for name in names:
                cell = row["cells"][name]
                values += [_number(cell["mean"]), _number(cell["std"]), cell["n"]]
            writer.writerow([block["shots"], row["method"], *values])
    return buffer.getvalue()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
