"""The MRQA extractive-QA tasks of SPEC §7: SQuAD, NQ, HotpotQA, NewsQA, SearchQA.

Each task is (question, context) -> the answer span's text, scored by SQuAD F1 (the paper's number)
and exact match, max over the gold answers. Records carry `label` (the first gold answer) and
`answers` (every distinct gold answer, in the data's order); a training question with several
distinct answers becomes one example per answer (`Task.examples`).

Where the data comes from:
- hub: `mrqa-workshop/mrqa` (`plain_text`), one task per `subset` value (SQuAD,
  NaturalQuestionsShort, HotpotQA, NewsQA, SearchQA); the in-domain sets have train and validation.
- --data-dir, family folder `mrqa`: for SQuAD the official v1.1 JSON files (`train-v1.1.json`,
  `dev-v1.1.json`, or the dev set in parts `dev-v1.1.part*.json`); for every task the generic
  JSON-lines layout read by `generic_jsonl_reader` (`train.jsonl`, `validation.jsonl` or
  `dev.jsonl`, keys `question`, `context`, `answers`, renamed by an optional `fields.json`).

Split rule L: 1,000 shuffled training questions are dev, the official validation set is test.

`generic_jsonl_reader`, `locate` and `require` are generic helpers that `others.py` uses too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from bmtpt_cli.data.benchmark import HubSource, LocalSource, benchmark_task
from bmtpt_cli.data.sources import Normaliser, read_jsonl, task_file
from bmtpt_cli.data.splits import LARGE
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError

FIELDS_FILE = "fields.json"
"""Optional file in a task folder mapping the task's key names to the keys its JSONL files use."""

QA_KEYS = ("question", "context", "answers")
"""Keys an MRQA row (hub or JSONL) must have: answers is a list of strings."""


# ---------------------------------------------------------------------------------------------
# Generic helpers (shared with others.py)


def locate(where: Path | str, position: int | str) -> str:
    """Where a raw row is, for error messages.

    Local rows: `'file' line N` (or `'file' <position>` when the position is a description, as
    in SQuAD's nested JSON); hub rows: `<repo (config) split> row N`.
    """
    if isinstance(where, Path):
        return f"'{where}' line {position}" if isinstance(position, int) else f"'{where}' {position}"
    return f"{where} row {position}"


def require(row: dict, key: str, where: Path | str, position: int | str):
    """row[key], or a one-line BmtptError naming the file and line (or hub row) and the key."""
    if not isinstance(row, dict) or key not in row:
        raise BmtptError(f"{locate(where, position)}: missing field '{key}'")
    return row[key]


def require_text(row: dict, key: str, where: Path | str, position: int | str, *, allow_empty: bool = False) -> str:
    """row[key] as a string; a one-line error when it is missing, not a string or (by default) blank."""
    value = require(row, key, where, position)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise BmtptError(f"{locate(where, position)}: field '{key}' must be a non-empty string, got {value!r}")
    return value


def jsonl_names(split: str) -> tuple[str, ...]:
    """File names tried for an official split: `<split>.jsonl`, and `dev.jsonl` for validation."""
    return (f"{split}.jsonl", "dev.jsonl") if split == "validation" else (f"{split}.jsonl",)


def read_field_map(folder: Path, keys: tuple[str, ...]) -> dict[str, str]:
    """The folder's `fields.json` ({task key: file key}), or {} when there is none.

    Only the task's own `keys` may be mapped, each to a string; anything else is a one-line error.
    """
    path = folder / FIELDS_FILE
    if not path.is_file():
        return {}
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BmtptError(f"'{path}' line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise BmtptError(f"'{path}' must be one JSON object mapping field names to key names, e.g. {{\"context\": \"passage\"}}")
    unknown = [name for name in mapping if name not in keys]
    if unknown:
        raise BmtptError(f"'{path}': unknown field(s) {', '.join(unknown)}; this task reads {', '.join(keys)}")
    return mapping


def rename_keys(row, mapping: dict[str, str], path: Path, line: int) -> dict:
    """The row with each task key filled from the file key `mapping` names for it."""
    if not isinstance(row, dict):
        raise BmtptError(f"'{path}' line {line}: expected a JSON object, got {type(row).__name__}")
    renamed = dict(row)
    for name, key in mapping.items():
        if key not in row:
            raise BmtptError(f"'{path}' line {line}: missing field '{key}' ({FIELDS_FILE} reads '{name}' from it)")
        renamed[name] = row[key]
    return renamed


def read_jsonl_records(path: Path, normalise: Normaliser, mapping: dict[str, str]) -> list[dict]:
    """Normalised records of one JSON-lines file (rows the normaliser returns None for are skipped)."""
    records = []
    for line, row in read_jsonl(path):
        record = normalise(rename_keys(row, mapping, path, line), path, line)
        if record is not None:
            records.append(record)
    return records


def generic_jsonl_reader(
    normalise: Normaliser,
    keys: tuple[str, ...],
    *,
    names: Callable[[str], tuple[str, ...]] = jsonl_names,
) -> Callable[[Path, str, str], list[dict]]:
    """A `LocalSource` reader for a task folder of JSON-lines files, one file per official split.

    - The file of official split S is the first of `names(S)` in the folder (by default
      `S.jsonl`, and `dev.jsonl` too for validation); none there: a one-line error listing them.
    - Each non-empty line is one JSON object whose keys are the task's raw `keys` (the same keys
      as the hub's rows, so one normaliser serves both). A `fields.json` in the folder may map
      task keys to other file keys: `{"context": "passage", "answers": "gold"}` reads `context`
      from `passage` and `answers` from `gold`.
    - Each row goes to `normalise(row, path, line)`; it returns the record, or None to skip the
      row, and raises BmtptError naming the file and line for bad data.
    """

    def read(folder: Path, split: str, task: str) -> list[dict]:
        path = task_file(folder, names(split), task, split)
        return read_jsonl_records(path, normalise, read_field_map(folder, keys))

    return read


# ---------------------------------------------------------------------------------------------
# MRQA records


def gold_answers(value, where: Path | str, position: int | str) -> tuple[str, ...]:
    """The distinct non-blank gold answers (stripped, order kept); one string counts as a list of one.

    A non-string answer, or no answer left, is a one-line error: every question needs a gold span.
    """
    answers = [value] if isinstance(value, str) else value
    if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) for a in answers):
        raise BmtptError(f"{locate(where, position)}: field 'answers' must be a list of strings, got {value!r}")
    distinct = tuple(dict.fromkeys(a.strip() for a in answers if a.strip()))
    if not distinct:
        raise BmtptError(f"{locate(where, position)}: the question has no non-empty gold answer")
    return distinct


def qa_record(row: dict, where: Path | str, position: int | str) -> dict:
    """An MRQA row (question, context, answers) -> the normalised record (hub and local rows alike)."""
    answers = gold_answers(require(row, "answers", where, position), where, position)
    return {
        "question": require_text(row, "question", where, position),
        "context": require_text(row, "context", where, position),
        "label": answers[0],
        "answers": answers,
    }


_QA_JSONL = generic_jsonl_reader(qa_record, QA_KEYS)
"""Reader of an MRQA task folder in the generic JSON-lines layout."""


# ---------------------------------------------------------------------------------------------
# SQuAD v1.1 JSON files


SQUAD_FILES = {"train": "train-v1.1.json", "validation": "dev-v1.1.json"}
SQUAD_PARTS = "dev-v1.1.part*.json"
"""The validation set stored in several files (as in the shared test data): concatenated in name
order, numbers compared as numbers (part2 before part10)."""


def _natural_key(path: Path) -> list:
    """Sort key that orders part2 before part10."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", path.name)]


def squad_json_files(folder: Path, split: str) -> list[Path]:
    """The SQuAD JSON file(s) holding an official split in `folder`; [] when there are none."""
    if split not in SQUAD_FILES:
        return []
    whole = folder / SQUAD_FILES[split]
    if whole.is_file():
        return [whole]
    if split == "validation":
        return sorted((p for p in folder.glob(SQUAD_PARTS) if p.is_file()), key=_natural_key)
    return []


def _squad_list(node, key: str, path: Path, position: str) -> list:
    """node[key] when it is a list, else a one-line error naming the file and position."""
    value = node.get(key) if isinstance(node, dict) else None
    if not isinstance(value, list):
        raise BmtptError(f"'{path}' {position}: expected a list under '{key}' (SQuAD v1.1 layout)")
    return value


def _squad_row(qa, context, path: Path, position: str) -> dict:
    """One SQuAD question as an MRQA row: answers become their texts."""
    answers = require(qa, "answers", path, position)
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        raise BmtptError(f"'{path}' {position}: 'answers' must be a list of {{\"text\", \"answer_start\"}} objects")
    return {
        "question": require(qa, "question", path, position),
        "context": context,
        "answers": [require(a, "text", path, position) for a in answers],
    }


def read_squad_json(path: Path) -> list[dict]:
    """Normalised records of one SQuAD v1.1 JSON file, in file order."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BmtptError(f"'{path}' line {exc.lineno}: not valid JSON ({exc.msg})") from None
    records = []
    for i, article in enumerate(_squad_list(document, "data", path, "top level")):
        for j, paragraph in enumerate(_squad_list(article, "paragraphs", path, f"article {i}")):
            context = require(paragraph, "context", path, f"article {i} paragraph {j}")
            for k, qa in enumerate(_squad_list(paragraph, "qas", path, f"article {i} paragraph {j}")):
                qid = qa.get("id") if isinstance(qa, dict) else None
                position = f"article {i} paragraph {j} question {k}" + (f" (id {qid})" if qid else "")
                records.append(qa_record(_squad_row(qa, context, path, position), path, position))
    return records


def squad_reader(folder: Path, split: str, task: str) -> list[dict]:
    """SQuAD's official split: the v1.1 JSON file (validation: or its parts), else the generic JSONL file."""
    files = squad_json_files(folder, split)
    if files:
        return [record for path in files for record in read_squad_json(path)]
    if any((folder / name).is_file() for name in jsonl_names(split)):
        return _QA_JSONL(folder, split, task)
    wanted = [SQUAD_FILES[split]] if split in SQUAD_FILES else []
    wanted += [SQUAD_PARTS] if split == "validation" else []
    raise BmtptError(
        f"task {task} needs {' or '.join([*wanted, *jsonl_names(split)])} in '{folder}' for its {split} split: add the file"
    )


# ---------------------------------------------------------------------------------------------
# The tasks


def mrqa_hub(subset: str) -> HubSource:
    """The hub source of one MRQA subset: `mrqa-workshop/mrqa` rows whose `subset` is `subset`."""
    return HubSource("mrqa-workshop/mrqa", "plain_text", qa_record, keep=lambda row: row.get("subset") == subset)


# name: (hub subset, local folder names, description)
_SPECS = {
    "squad": ("SQuAD", ("SQuAD", "squad"), "SQuAD v1.1: Wikipedia paragraphs, crowd-written questions"),
    "nq": (
        "NaturalQuestionsShort",
        ("NaturalQuestions", "NaturalQuestionsShort", "NQ", "nq"),
        "Natural Questions (short answers): Google queries over Wikipedia pages",
    ),
    "hotpotqa": ("HotpotQA", ("HotpotQA", "hotpotqa"), "HotpotQA: multi-hop questions over Wikipedia paragraphs"),
    "newsqa": ("NewsQA", ("NewsQA", "newsqa"), "NewsQA: questions about CNN news articles"),
    "searchqa": ("SearchQA", ("SearchQA", "searchqa"), "SearchQA: Jeopardy! questions over search-engine snippets"),
}

MRQA_TASKS: dict[str, Task] = {
    name: benchmark_task(
        name=name,
        benchmark="mrqa",
        input_fields=("question", "context"),
        label_words=None,
        metrics=("squad_f1", "squad_em"),
        rule=LARGE,
        hub=mrqa_hub(subset),
        local=LocalSource("mrqa", folders, squad_reader if name == "squad" else _QA_JSONL),
        description=description,
    )
    for name, (subset, folders, description) in _SPECS.items()
}
"""The five MRQA in-domain tasks by registry name."""
