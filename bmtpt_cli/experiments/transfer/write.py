"""Writing the transfer matrices: `NAME.csv`, `NAME.json` and `NAME.png` per matrix, in one output folder.

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
