"""Reading official splits: from the Hugging Face hub (`datasets`), or from local files (--data-dir).

Local layouts: a task's folder (e.g. `RTE`) directly under the data directory or under its family's
subfolder (`glue/RTE`, `superglue/CB`, `mrqa/SQuAD`, `others/SciTail`). Every problem with a file is
a one-line `BmtptError` naming the file (and line).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bmtpt_cli.errors import BmtptError


PARQUET_REVISION = "refs/convert/parquet"  # the hub's parquet conversion of every dataset (SPEC §9)


def load_hub_split(
    repo: str, config: str | None, split: str, *, revision: str | None = None, keep: Callable[[dict], bool] | None = None
) -> list[dict]:
    """Rows of one split of a hub dataset, as dicts (`datasets.load_dataset`, data-file repos only).

    `keep` filters rows inside `datasets` (cached on disk) before any are turned into dicts, so a
    task taken from a large shared dataset (MRQA's subsets) does not build the whole of it in memory.

    `datasets` 5 loads data-file repositories only: when the requested revision cannot be loaded
    (a formerly script-based repo), the hub's parquet conversion is tried before giving up.
    """
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a dependency
        raise BmtptError("the `datasets` package is needed to load tasks from the hub: pip install datasets") from exc
    try:
        try:
            dataset = datasets.load_dataset(repo, config, split=split, revision=revision)
        except (ConnectionError, TimeoutError):
            raise
        except Exception:  # noqa: BLE001 — e.g. a script-based revision: fall back to the parquet conversion
            if revision == PARQUET_REVISION:
                raise
            dataset = datasets.load_dataset(repo, config, split=split, revision=PARQUET_REVISION)
    except Exception as exc:  # noqa: BLE001 — network, missing repo, missing split: all user-fixable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BmtptError(
            f"could not load {repo}{f' ({config})' if config else ''} split '{split}' from the hub: {first} — "
            f"check the network, or pass --data-dir DIR with the task's files"
        ) from None
    if keep is not None:
        dataset = dataset.filter(keep)
    return [dict(row) for row in dataset]


def find_task_dir(data_dir: Path, family: str, folder_names: tuple[str, ...], task: str) -> Path:
    """The task's folder under `data_dir` (directly or under the family's subfolder)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BmtptError(f"--data-dir '{data_dir}' is not a directory: pass the folder that holds the task files")
    for base in (data_dir, data_dir / family):
        for name in folder_names:
            if (base / name).is_dir():
                return base / name
    tried = ", ".join(str(base / folder_names[0]) for base in (data_dir, data_dir / family))
    raise BmtptError(f"no files for task {task} under --data-dir '{data_dir}' (looked for {tried}): add them or drop --data-dir")


def task_file(folder: Path, names: tuple[str, ...], task: str, split: str) -> Path:
    """The first of `names` that exists in `folder`, else a one-line error listing them."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise BmtptError(f"task {task} needs {' or '.join(names)} in '{folder}' for its {split} split: add the file")


def read_tsv(path: Path, *, header: bool = True) -> Iterator[tuple[int, dict | list]]:
    """Rows of a GLUE TSV as (line number, dict by header) — or lists when there is no header.

    GLUE files are not CSV: fields are split on tabs with quoting off, and a leading BOM is dropped.
    """
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns = next(reader, None) if header else None
        if header and columns is None:
            raise BmtptError(f"'{path}' is empty: it needs a header line and rows")
        for line, row in enumerate(reader, start=2 if header else 1):
            if not row:
                continue
            if columns is None:
                yield line, row
            else:
                if len(row) != len(columns):
                    raise BmtptError(f"'{path}' line {line}: {len(row)} fields, the header has {len(columns)}")
                yield line, dict(zip(columns, row))


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON-lines file."""
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield line, json.loads(text)
            except json.JSONDecodeError as exc:
                raise BmtptError(f"'{path}' line {line}: not valid JSON ({exc.msg})") from None


def field(row: dict, key: str, path: Path, line: int):
    """row[key], or a one-line error naming the file, line and missing column."""
    try:
        return row[key]
    except (KeyError, TypeError):
        raise BmtptError(f"'{path}' line {line}: missing column/field '{key}'") from None


def label_index(value, mapping: dict, path: Path | str, line: int | str) -> int:
    """The label id of a raw label value, or an error naming the value and the ones allowed."""
    key = value.strip() if isinstance(value, str) else value
    if key not in mapping:
        allowed = ", ".join(map(repr, mapping))
        raise BmtptError(f"'{path}' line {line}: unknown label {value!r} (expected one of {allowed})")
    return mapping[key]


Normaliser = Callable[[dict, "Path | str", "int | str"], "dict | None"]
"""(raw row, file or hub id, line or index) -> normalised record, or None to skip the row."""
