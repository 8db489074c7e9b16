"""Reading official splits: from the Hugging Face hub (`datasets`), or from local files (--data-dir).

The row helpers every family's reader shares live here too: `locate` (where a row is), `field` (a
checked key of a row), `label_id` (a raw label's id) and `jsonl_reader` (a folder of JSON-lines
files, the one way JSONL data files are read).

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

from bmtpt_cli.errors import BmtptError, excerpt


PARQUET_REVISION = "refs/convert/parquet"  # the hub's parquet conversion of every dataset (SPEC §9)
DEFAULT_ENDPOINT = "https://huggingface.co"  # huggingface_hub's default; HF_ENDPOINT overrides it
PROBE_TIMEOUT_S = 5.0


def settle_offline_mode() -> str | None:
    """Before the first hub load of a process: if the hub cannot be reached, switch to offline mode.

    Without it, `datasets` retries an unreachable hub for about 25 s per split before it falls back
    to its cache. One short request decides instead: unreachable → `HF_HUB_OFFLINE=1` is set for this
    process (cached datasets still load, others fail at once). Returns a note for the user, or None.
    Must run before `datasets` or `huggingface_hub` is imported, which read the variable then.
    """
    import os

    if os.environ.get("HF_HUB_OFFLINE") == "1" or "datasets" in sys.modules or "huggingface_hub" in sys.modules:
        return None
    reason = hub_unreachable()
    if reason is None:
        return None
    os.environ["HF_HUB_OFFLINE"] = "1"
    return f"note: the hub ({hub_endpoint()}) cannot be reached ({reason}): using only datasets already in the local cache"


def hub_endpoint() -> str:
    """The hub this process talks to: `HF_ENDPOINT`, else huggingface.co."""
    import os

    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)


_PROBES: dict[str, str | None] = {}
"""Each endpoint's probe result in this process (why it is unreachable, or None): probed once."""


def hub_unreachable(*, probe: bool = True) -> str | None:
    """Why the hub cannot be reached (one HEAD request of at most PROBE_TIMEOUT_S), or None if it answers.

    The data load (`settle_offline_mode`) and the model load (`runner.model`) share it, so a process
    probes once; with `probe=False` only an earlier probe's result is returned (None if none ran).
    """
    import urllib.error
    import urllib.request

    endpoint = hub_endpoint()
    if endpoint not in _PROBES and probe:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
            _PROBES[endpoint] = None
        except urllib.error.HTTPError:
            _PROBES[endpoint] = None  # it answered: reachable
        except (OSError, ValueError) as exc:
            _PROBES[endpoint] = str(getattr(exc, "reason", exc))
    return _PROBES.get(endpoint)


class HubUnreachable(BmtptError):
    """The hub could not be reached at all (offline mode, no network): trying other tasks is pointless."""


def _is_unreachable(exc: Exception) -> bool:
    """Whether a loading error means no connection to the hub (rather than a missing repo or split)."""
    text = f"{type(exc).__name__} {exc}"
    return any(word in text for word in ("Couldn't reach", "OfflineModeIsEnabled", "LocalEntryNotFound", "ConnectError",
                                         "ConnectionError", "Timeout", "Max retries"))


def load_hub_split(
    repo: str, config: str | None, split: str, *, revision: str | None = None, keep: Callable[[dict], bool] | None = None
) -> list[dict]:
    """Rows of one split of a hub dataset, as dicts (`datasets.load_dataset`, data-file repos only).

    `keep` filters rows inside `datasets` (cached on disk) before any are turned into dicts, so a
    task taken from a large shared dataset (MRQA's subsets) does not build the whole of it in memory.

    `datasets` 5 loads data-file repositories only: when the requested revision cannot be loaded
    (a formerly script-based repo), the hub's parquet conversion is tried before giving up.
    """
    note = settle_offline_mode()
    if note:
        print(note, file=sys.stderr)
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
        error = HubUnreachable if _is_unreachable(exc) else BmtptError
        raise error(
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
                check_inside_data_dir(data_dir, base / name)
                return base / name
    tried = ", ".join(str(base / folder_names[0]) for base in (data_dir, data_dir / family))
    raise BmtptError(f"no files for task {task} under --data-dir '{data_dir}' (looked for {tried}): add them or drop --data-dir")


def check_inside_data_dir(data_dir: Path, folder: Path) -> None:
    """Refuse a task folder, or a file in it, that a symbolic link leads outside `data_dir`.

    A task reads only files under --data-dir: a link to elsewhere (e.g. `train.tsv -> /etc/...`) would
    read, and an error would quote, a file the user never pointed bmtpt at. Links inside it are fine.
    """
    root = Path(data_dir).resolve()
    for path in [folder, *(entry for entry in folder.iterdir() if entry.is_symlink())]:
        target = path.resolve()
        if target != root and root not in target.parents:
            raise BmtptError(
                f"'{path}' leads outside --data-dir '{data_dir}' through a symbolic link: bmtpt reads only files inside "
                "it; copy the file in, or pass the directory that holds it as --data-dir"
            )


def utf8_error(path: Path) -> BmtptError:
    """The one-line error for a file that is not valid UTF-8: the byte offset and line of its first bad byte."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0  # bytes fed to the decoder so far, and the newlines among them
    with open(path, "rb") as handle:
        for chunk in [*iter(lambda: handle.read(1 << 20), b""), b""]:
            pending = decoder.getstate()[0]  # the undecoded tail of the previous chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:  # positions in pending + chunk
                line = newlines + (pending + chunk).count(b"\n", 0, exc.start) + 1
                return BmtptError(
                    f"'{path}' line {line}: not valid UTF-8 (byte {offset - len(pending) + exc.start} of the file): "
                    "save the file as UTF-8"
                )
            offset, newlines = offset + len(chunk), newlines + chunk.count(b"\n")
    return BmtptError(f"'{path}' is not valid UTF-8: save the file as UTF-8")


def read_text_file(path: Path) -> str:
    """A whole data file as text; invalid UTF-8 is a one-line error naming the line and byte."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise utf8_error(path) from None


def task_file(folder: Path, names: tuple[str, ...], task: str, split: str) -> Path:
    """The first of `names` that exists in `folder`, else a one-line error listing them."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    present = sorted(path.name for path in folder.iterdir() if path.is_file()) if folder.is_dir() else []
    unused = f" (found {', '.join(present)}, which bmtpt does not read)" if present else ""
    raise BmtptError(f"task {task} needs {' or '.join(names)} in '{folder}' for its {split} split{unused}: add the file")


def read_tsv(path: Path, *, header: bool = True) -> Iterator[tuple[int, dict | list]]:
    """Rows of a GLUE TSV as (line number, dict by header) — or lists when there is no header.

    GLUE files are not CSV: fields are split on tabs with quoting off, and a leading BOM is dropped.
    """
    csv.field_size_limit(sys.maxsize)
    try:
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
    except UnicodeDecodeError:
        raise utf8_error(path) from None


FIELDS_FILE = "fields.json"
"""Optional file in a task folder mapping the task's key names to the keys its JSONL files use."""

Normaliser = Callable[[dict, "Path | str", "int | str"], "dict | None"]
"""(raw row, file or hub id, line or index) -> normalised record, or None to skip the row."""

RowParser = Callable[[dict, Path, int], list[dict]]
"""(JSON object of one line, file, line) -> the records on that line."""


# --- where a row is, its fields, its label --------------------------------------------------------


def locate(where: Path | str, position: int | str) -> str:
    """Where a raw row is, for error messages.

    Local rows: `'file' line N` (or `'file' <position>` when the position is a description, as
    in SQuAD's nested JSON); hub rows: `<repo (config) split> row N`.
    """
    if isinstance(where, Path):
        return f"'{where}' line {position}" if isinstance(position, int) else f"'{where}' {position}"
    return f"{where} row {position}"


def field(row, key: str, where: Path | str, position: int | str, *, text: bool = False, what: str = "field"):
    """row[key], or a one-line BmtptError naming the row (see `locate`) and the key.

    `text=True`: the value must also be a non-blank string. `what` is the word the missing-key
    message uses ("field"; the GLUE TSV and SuperGLUE file readers say "column/field").
    """
    if not isinstance(row, dict) or key not in row:
        raise BmtptError(f"{locate(where, position)}: missing {what} '{key}'")
    value = row[key]
    if text and (not isinstance(value, str) or not value.strip()):
        raise BmtptError(f"{locate(where, position)}: field '{key}' must be a non-empty string, got {excerpt(value)}")
    return value


def label_id(
    value, labels: dict, where: Path | str, position: int | str, *, digits: bool = False, bools: bool = True
) -> int:
    """The id `labels` maps a raw label to (strings stripped), or an error naming the value and the ones allowed.

    `digits=True`: a digit string missing from `labels` is looked up as its int ("1" for 1);
    `bools=False`: True and False are never labels (by default they match 1 and 0 as Python has it).
    """
    key = value.strip() if isinstance(value, str) else value
    if digits and isinstance(key, str) and key.isdigit() and key not in labels:
        key = int(key)
    if (not bools and isinstance(key, bool)) or key not in labels:
        allowed = ", ".join(map(repr, labels))
        raise BmtptError(f"{locate(where, position)}: unknown label {excerpt(value)} (expected one of {allowed})")
    return labels[key]


# --- JSON-lines data files ------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of a JSON-lines file."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    yield line, json.loads(text)
                except json.JSONDecodeError as exc:
                    raise BmtptError(f"'{path}' line {line}: not valid JSON ({exc.msg})") from None
                except RecursionError:
                    raise BmtptError(f"'{path}' line {line}: JSON nested too deeply to read") from None
    except UnicodeDecodeError:
        raise utf8_error(path) from None


def jsonl_names(split: str) -> tuple[str, ...]:
    """File names tried for an official split: `<split>.jsonl`, and `dev.jsonl` for validation."""
    return (f"{split}.jsonl", "dev.jsonl") if split == "validation" else (f"{split}.jsonl",)


def jsonl_split_file(folder: Path, split: str, task: str) -> Path:
    """The JSON-lines file of an official split in a task's folder (the first of `jsonl_names`)."""
    return task_file(folder, jsonl_names(split), task, split)


def read_field_map(folder: Path, keys: tuple[str, ...]) -> dict[str, str]:
    """The folder's `fields.json` ({task key: file key}), or {} when there is none.

    Only the task's own `keys` may be mapped, each to a string; anything else is a one-line error.
    """
    path = folder / FIELDS_FILE
    if not path.is_file():
        return {}
    try:
        mapping = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise BmtptError(f"'{path}' line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise BmtptError(f"'{path}': JSON nested too deeply to read") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise BmtptError(f"'{path}' must be one JSON object mapping field names to key names, e.g. {{\"context\": \"passage\"}}")
    unknown = [name for name in mapping if name not in keys]
    if unknown:
        raise BmtptError(f"'{path}': unknown field(s) {', '.join(excerpt(n, quoted=False) for n in unknown[:5])}; this task reads {', '.join(keys)}")
    return mapping


def rename_keys(row, mapping: dict[str, str], path: Path, line: int) -> dict:
    """The row with each task key filled from the file key `mapping` names for it."""
    if not isinstance(row, dict):
        raise BmtptError(f"'{path}' line {line}: expected a JSON object, got {type(row).__name__}")
    renamed = dict(row)
    for name, key in mapping.items():
        if key not in row:
            raise BmtptError(f"'{path}' line {line}: missing field {excerpt(key)} ({FIELDS_FILE} reads '{name}' from it)")
        renamed[name] = row[key]
    return renamed


def row_parser(normalise: Normaliser) -> RowParser:
    """A `RowParser` giving the one record `normalise` makes of a row, or none when it returns None."""

    def parse(row: dict, path: Path, line: int) -> list[dict]:
        record = normalise(row, path, line)
        return [] if record is None else [record]

    return parse


def jsonl_reader(
    parse: RowParser,
    *,
    keys: tuple[str, ...] | None = None,
    split_file: Callable[[Path, str, str], Path] = jsonl_split_file,
) -> Callable[[Path, str, str], list[dict]]:
    """A `LocalSource` reader for a task folder of JSON-lines files, one file per official split.

    - The file of official split S is `split_file(folder, S, task)`: by default the first of
      `jsonl_names(S)` (`S.jsonl`, and `dev.jsonl` too for validation); none there: a one-line
      error listing them.
    - Each non-empty line is one JSON value; `parse(row, path, line)` gives its records and
      raises BmtptError naming the file and line for bad data.
    - With `keys` (the task's raw keys, the same as the hub's, so one normaliser serves both)
      every line must be a JSON object, and a `fields.json` in the folder may map task keys to
      other file keys: `{"context": "passage", "answers": "gold"}` reads `context` from `passage`
      and `answers` from `gold`. Without `keys` the rows go to `parse` as they are.
    """

    def read(folder: Path, split: str, task: str) -> list[dict]:
        path = split_file(folder, split, task)
        mapping = None if keys is None else read_field_map(folder, keys)
        records = []
        for line, row in read_jsonl(path):
            records.extend(parse(row if mapping is None else rename_keys(row, mapping, path, line), path, line))
        return records

    return read
