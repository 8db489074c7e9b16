"""Writing the transfer matrices: `NAME.csv`, `NAME.json` and `NAME.png` per matrix, in one output folder,
and the indicators' correlations with transfer: `correlations.{csv,json,md}` and `scatter/INDICATOR.png`.

The folder is filled as a hidden sibling (`.NAME.*.partial/`) and renamed into place when every file is
written, so a stopped run leaves the old folder or the new one, never a half-written one; an
existing folder is replaced only with `force`. `.NAME.run.lock` beside it keeps a second run off it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.files import OutputLock, check_output_directory, staged_directory, write_text_atomic
from bmtpt_cli.experiments.transfer.correlation import IndicatorCorrelation
from bmtpt_cli.experiments.transfer.matrix import Matrix


def check_out_folder(out: Path, *, force: bool) -> None:
    """Refuse an output folder that exists (without `force`) or is a file, or whose parent is unwritable."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BmtptError(f"'{out}' is a file: give --out a folder path (the matrices are several files)")
    if out.exists() and not force:
        raise BmtptError(f"output folder '{out}' already exists: pass --force to replace it or choose another --out")
    check_output_directory(out)


@contextlib.contextmanager
def staged_folder(out: Path, *, force: bool) -> Iterator[Path]:
    """A fresh hidden folder beside `out` to write into; on success it replaces `out`
    (`runtime.files.staged_directory`), while `.NAME.run.lock` keeps a second run off it."""
    out = Path(out)
    with OutputLock(out.with_name(f".{out.name}.run")):  # a lock file, never a folder
        check_out_folder(out, force=force)
        with staged_directory(out, force=force) as staging:
            yield staging


def csv_text(matrix: Matrix) -> str:
    """The matrix as CSV: a header row of column names, then one row per row name; empty = undefined.
    The matrix's notes (chance caveat, invalid generations) follow as `# ` lines (pandas: `comment="#"`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([f"{matrix.row_label} \\ {matrix.column_label}", *matrix.columns])
    for name, row in zip(matrix.rows, matrix.values):
        writer.writerow([name, *("" if math.isnan(v) else repr(float(v)) for v in row)])
    return buffer.getvalue() + "".join(f"# {note}\n" for note in matrix.notes)


def json_record(matrix: Matrix, common: dict) -> dict:
    """The matrix as a JSON-able record: rows, columns, values (null = undefined), what it is, and `common`
    (the settings, the prompts it read, the scoring rules, provenance)."""
    return {
        "name": matrix.name,
        "title": matrix.title,
        "description": matrix.description,
        "unit": matrix.unit,
        "row_label": matrix.row_label,
        "column_label": matrix.column_label,
        "rows": matrix.rows,
        "columns": matrix.columns,
        "values": [[None if math.isnan(v) else float(v) for v in row] for row in matrix.values],
        "notes": matrix.notes,
        **({"invalid": matrix.invalid, "examples": matrix.examples} if matrix.invalid is not None else {}),
        **matrix.extra,
        **common,
    }


def write_matrix(folder: Path, matrix: Matrix, common: dict) -> list[Path]:
    """Write `NAME.csv`, `NAME.json` and the heatmap `NAME.png` of one matrix into `folder`."""
    from bmtpt_cli.experiments.transfer.heatmap import write_heatmap

    paths = [folder / f"{matrix.name}.{ext}" for ext in ("csv", "json", "png")]
    write_text_atomic(paths[0], csv_text(matrix))
    write_text_atomic(paths[1], json.dumps(json_safe(json_record(matrix, common)), indent=2, allow_nan=False) + "\n")
    write_heatmap(paths[2], matrix)
    return paths


def json_safe(value):
    """`value` with every NaN or infinite float replaced by None (JSON has no NaN; a constant prediction's
    correlation, say, is undefined)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


CORRELATION_FIELDS = ("transfer", "indicator", "target", "rank", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p")
"""The columns of `correlations.csv`: one row per (transfer, indicator) over all pairs (target `all`, ranked),
then one per target."""
ALL_TARGETS = "all"


def correlation_table(rows: list[IndicatorCorrelation]) -> list[dict]:
    """The CSV's rows: per transfer matrix, each indicator over all pairs (with its rank by Spearman's ρ),
    then each indicator per target. `rows` come ranked within each transfer matrix (`correlation.ranked`)."""
    table, rank = [], {}
    for row in rows:
        rank[row.transfer] = rank.get(row.transfer, 0) + 1
        table.append({"transfer": row.transfer, "indicator": row.indicator, "target": ALL_TARGETS,
                      "rank": rank[row.transfer], **row.overall.to_dict()})
    for row in rows:
        for target, correlation in row.per_target.items():
            table.append({"transfer": row.transfer, "indicator": row.indicator, "target": target, "rank": None,
                          **correlation.to_dict()})
    return table


def correlations_csv(rows: list[IndicatorCorrelation], notes: list[str] = ()) -> str:
    """`correlation_table` as CSV (empty = undefined), numbers written with repr (round-trip exact), then
    `notes` as `# ` lines, as in a matrix's CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CORRELATION_FIELDS)
    for entry in correlation_table(rows):
        writer.writerow([_csv_cell(entry[name]) for name in CORRELATION_FIELDS])
    return buffer.getvalue() + "".join(f"# {note}\n" for note in notes)


def _csv_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def correlations_record(rows: list[IndicatorCorrelation], matrices: dict[str, Matrix], common: dict) -> dict:
    """`correlations.json`: per transfer matrix, the indicators ranked, each with its pooled and per-target
    figures and the pairs behind them (target -> [source, indicator, transfer]), and `common`."""
    transfers: dict[str, list] = {}
    for row in rows:
        transfers.setdefault(row.transfer, []).append({
            "rank": len(transfers[row.transfer]) + 1,
            "indicator": row.indicator,
            "title": matrices[row.indicator].title,
            "all_pairs": row.overall.to_dict(),
            "mean_target_spearman_rho": row.mean_target_spearman(),
            "per_target": {target: c.to_dict() for target, c in row.per_target.items()},
            "points": {target: [list(point) for point in points] for target, points in row.points.items()},
        })
    return {
        "name": "correlations",
        "title": "Transferability indicators against the measured transfer",
        "description": "Pearson's r (two-sided t-test p-value) and Spearman's rho (same test on the ranks) between "
                       "each indicator and each transfer matrix over the pairs source != target where both are "
                       "defined, pooled over every target and per target; ranked by the pooled rho",
        "transfer_titles": {name: matrices[name].title for name in transfers},
        "transfers": transfers,
        **common,
    }


def correlations_markdown(rows: list[IndicatorCorrelation], matrices: dict[str, Matrix], notes: list[str] = ()) -> str:
    """`correlations.md`: `notes` (caveats), then per transfer matrix the indicators ranked by pooled
    Spearman's ρ, then each indicator's ρ per target."""
    lines = ["# Transferability indicators against the measured transfer", "",
             "Over the pairs source ≠ target where both values are defined; p: two-sided, against no correlation.", ""]
    lines += [f"> {note}" for note in notes] + ([""] if notes else [])
    for transfer in dict.fromkeys(row.transfer for row in rows):
        group = [row for row in rows if row.transfer == transfer]
        targets = list(group[0].per_target)
        lines += [f"## {matrices[transfer].title} (`{transfer}`)", "",
                  "| rank | indicator | n | Pearson r | p | Spearman ρ | p | mean per-target ρ |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for rank, row in enumerate(group, 1):
            c = row.overall
            lines.append(f"| {rank} | `{row.indicator}` | {c.n} | {_md(c.pearson)} | {_md(c.pearson_p, 'p')} | "
                         f"{_md(c.spearman)} | {_md(c.spearman_p, 'p')} | {_md(row.mean_target_spearman())} |")
        lines += ["", "Spearman ρ per target:", "", "| indicator | " + " | ".join(targets) + " |",
                  "|---|" + "---:|" * len(targets)]
        for row in group:
            lines.append(f"| `{row.indicator}` | " + " | ".join(_md(row.per_target[t].spearman) for t in targets) + " |")
        lines.append("")
    return "\n".join(lines)


def _md(value: float, kind: str = "r") -> str:
    """A figure for the Markdown table: 2 decimals (a p-value: 3 significant digits), n/a when undefined."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.3g}" if kind == "p" else f"{value:.2f}"


def write_correlations(folder: Path, rows: list[IndicatorCorrelation], matrices: dict[str, Matrix], common: dict) -> list[Path]:
    """Write `correlations.csv`, `.json` and `.md`, and `scatter/INDICATOR.png` per indicator, into `folder`;
    `common` (settings, prompts, provenance, `notes`) goes into the JSON, its `notes` also into the CSV and Markdown."""
    from bmtpt_cli.experiments.transfer.scatter import write_scatter

    paths = [folder / f"correlations.{ext}" for ext in ("csv", "json", "md")]
    notes = common.get("notes", [])
    write_text_atomic(paths[0], correlations_csv(rows, notes))
    record = json_safe(correlations_record(rows, matrices, common))
    write_text_atomic(paths[1], json.dumps(record, indent=2, allow_nan=False) + "\n")
    write_text_atomic(paths[2], correlations_markdown(rows, matrices, notes))
    scatter = folder / "scatter"
    for indicator in dict.fromkeys(row.indicator for row in rows):
        scatter.mkdir(exist_ok=True)
        paths.append(scatter / f"{indicator}.png")
        write_scatter(paths[-1], [row for row in rows if row.indicator == indicator], matrices)
    return paths
