"""The finished runs of a plan read back into the paper's layout: per block a row per method, a column per
task, the benchmarks' averages and the overall average, mean ± std over the replicates (seed × posterior),
the paper's number beside ours with the difference, and each row's paired difference against PT.

Aggregation is the few-shot grid's (`experiments.tables.build_table`, with k = 0 for full-data blocks); a
row whose runs are not all finished shows what there is, and says how many replicates are behind each cell.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bmtpt_cli.data.registry import get_task
from bmtpt_cli.experiments.tables import build_table, format_cell, format_difference, paired_comparisons
from bmtpt_cli.reproduce.paper import ROWS
from bmtpt_cli.reproduce.plan import Plan
from bmtpt_cli.reproduce.state import is_finished

FULL_DATA = 0  # the k of a full-data block in build_table's terms
BASELINE_ROW = "pt"


def result_rows(root: Path, plan: Plan) -> dict[str, list[dict]]:
    """Per block, the results of its finished runs as few-shot-grid rows (method = the table's row key)."""
    found: dict[str, list[dict]] = {}
    for run in plan.runs:
        if run.row is None or not is_finished(root, run):
            continue
        if run.command == "evaluate":
            report = json.loads((root / run.produces).read_text(encoding="utf-8"))
            for result in report["results"]:
                found.setdefault(run.block, []).append({
                    "method": run.row, "source": run.posterior, "k": FULL_DATA, "task": result["task"],
                    "seed": run.seed, "value": result["value"], "metric": result["metric"]})
        elif run.command == "fewshot":
            for line in (root / run.produces / "results.jsonl").read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    found.setdefault(f"k={row['k']}", []).append(row | {"method": run.row})
    return found


def build_tables(root: Path, plan: Plan) -> list[dict]:
    """One `build_table` result per block of the plan's table, with the paper's numbers and the rows not run."""
    results = result_rows(root, plan)
    tasks = [(task, benchmark, get_task(task).metric) for benchmark, ts in plan.benchmarks for task in ts]
    blocks = []
    for block in plan.table.blocks:
        rows = [key for key in block.rows if key in plan.rows]
        if not rows or block.name not in plan.blocks:
            continue
        k = block.shots[0] if block.shots else FULL_DATA
        ran = [key for key in rows if key not in plan.skipped]
        sources = {key: plan.posteriors if ROWS[key].source else 1 for key in ran}
        table = build_table(results.get(block.name, []), methods=ran, shots=[k], tasks=tasks,
                            seeds=list(range(plan.seeds)), sources=sources)
        comparisons = paired_comparisons(table, BASELINE_ROW) if BASELINE_ROW in ran else []
        blocks.append({"block": block.name, "table": table, "rows": rows, "comparisons": comparisons})
    return blocks


def paper_number(plan: Plan, block: str, row: str, column: str) -> float | None:
    """The paper's number for a cell (SPEC §6), at paper scale only: a toy cell is no paper cell."""
    return plan.table.paper.get((block, row, column)) if plan.scale == "paper" else None


def _paper_summary(plan: Plan, block: str, row: str) -> str:
    numbers = [(column, value) for (b, r, column), value in plan.table.paper.items() if b == block and r == row]
    return ", ".join(f"{column} {value:.1f}" for column, value in numbers) or "—"


def table_markdown(plan: Plan, blocks: list[dict]) -> str:
    """The table in the paper's layout, as Markdown."""
    scale = ("paper scale (T5-base, the paper's tasks and schedules)" if plan.scale == "paper"
             else "toy scale (the toy world's model, sources and targets: the paper's numbers are shown beside, not compared)")
    lines = [f"# {plan.table.title}", "", f"bmtpt reproduce {plan.table.name}, {scale}; {plan.seeds} seed(s) × "
             f"{plan.posteriors} source posterior(s) per row; cells are mean ± std over them, in points (metric × 100).  ",
             f"{plan.table.note}  " if plan.table.note else "", ""]
    for entry in blocks:
        table, names = entry["table"], [c["name"] for c in entry["table"]["columns"]]
        paper_column = plan.scale == "toy"
        head = "| row | " + " | ".join(names) + " |" + (" paper (T5-base) |" if paper_column else "")
        lines += [f"## {entry['block']}", "", head, "|---|" + "---:|" * len(names) + ("---|" if paper_column else "")]
        by_key = {row["method"]: row for row in table["blocks"][0]["rows"]}
        for key in entry["rows"]:
            label = ROWS[key].label
            if key in plan.skipped:
                cells = [_with_paper(None, paper_number(plan, entry["block"], key, n)) for n in names]
                lines.append(f"| {label} (not run¹) | " + " | ".join(cells) + " |"
                             + (f" {_paper_summary(plan, entry['block'], key)} |" if paper_column else ""))
                continue
            cells = [_with_paper(by_key[key]["cells"][n], paper_number(plan, entry["block"], key, n)) for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |"
                         + (f" {_paper_summary(plan, entry['block'], key)} |" if paper_column else ""))
        lines.append("")
        if entry["comparisons"]:
            pairing = "seed and k-shot subset" if entry["block"].startswith("k=") else "seed"
            lines += [f"Paired difference against PT (points; the same {pairing} and source posterior; 95% intervals: "
                      "t over the pairs, then bootstrap clustered by source posterior; ✓ both exclude 0):", "",
                      "| row − PT | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            for key in dict.fromkeys(c["method"] for c in entry["comparisons"]):
                found = {c["column"]: c for c in entry["comparisons"] if c["method"] == key}
                lines.append(f"| {ROWS[key].label} | " + " | ".join(format_difference(found[n]) if n in found else "–"
                                                                   for n in names) + " |")
            lines.append("")
        skipped = [key for key in entry["rows"] if key in plan.skipped]
        if skipped:
            lines += [f"¹ {ROWS[key].label}: {plan.skipped[key]}.  " for key in skipped] + [""]
        counts = sorted({c["n"] for row in table["blocks"][0]["rows"] for c in row["cells"].values()})
        lines += [f"Replicates behind a cell: {', '.join(map(str, counts))} (of {plan.seeds * plan.posteriors} per row with a "
                  f"source posterior, {plan.seeds} for PT).", ""]
    return "\n".join(line for line in lines if line is not None) + "\n"


def _with_paper(cell: dict | None, paper: float | None) -> str:
    ours = "—" if cell is None or cell["mean"] is None else format_cell(cell)
    if paper is None:
        return ours
    if cell is None or cell["mean"] is None:
        return f"{ours} (paper {paper:.1f})"
    return f"{ours} (paper {paper:.1f}, Δ {cell['mean'] - paper:+.1f})"


def table_csv(plan: Plan, blocks: list[dict]) -> str:
    """One line per (block, row, column): ours (mean, std, n), the paper's number and the difference."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "scale", "block", "row", "column", "mean", "std", "n", "paper", "difference", "not_run"])
    for entry in blocks:
        by_key = {row["method"]: row for row in entry["table"]["blocks"][0]["rows"]}
        for key in entry["rows"]:
            for column in entry["table"]["columns"]:
                name = column["name"]
                cell = by_key[key]["cells"][name] if key in by_key else {"mean": None, "std": None, "n": 0}
                paper = paper_number(plan, entry["block"], key, name)
                difference = cell["mean"] - paper if cell["mean"] is not None and paper is not None else None
                writer.writerow([plan.table.name, plan.scale, entry["block"], key, name, _num(cell["mean"]), _num(cell["std"]),
                                 cell["n"], _num(paper), _num(difference), plan.skipped.get(key, "")])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def table_json(plan: Plan, blocks: list[dict]) -> dict:
    """Everything behind table.md: the plan's shape, each block's cells and pairs, the paper's numbers."""
    return {
        "table": plan.table.name, "title": plan.table.title, "scale": plan.scale, "seeds": plan.seeds,
        "posteriors": plan.posteriors, "skipped": plan.skipped,
        "paper": [{"block": b, "row": r, "column": c, "value": v} for (b, r, c), v in plan.table.paper.items()],
        "blocks": blocks,
    }
