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
  JSON-lines layout read by `sources.jsonl_reader` (`train.jsonl`, `validation.jsonl` or
  `dev.jsonl`, keys `question`, `context`, `answers`, renamed by an optional `fields.json`).

Split rule L: 1,000 shuffled training questions are dev, the official validation set is test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bmtpt_cli.data.benchmark import HubSource, LocalSource, benchmark_task
from bmtpt_cli.data.sources import field, jsonl_names, jsonl_reader, locate, read_text_file, row_parser
from bmtpt_cli.data.splits import LARGE
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError, excerpt

QA_KEYS = ("question", "context", "answers")
"""Keys an MRQA row (hub or JSONL) must have: answers is a list of strings."""


# ---------------------------------------------------------------------------------------------
# MRQA records


def gold_answers(value, where: Path | str, position: int | str) -> tuple[str, ...]:
    """The distinct non-blank gold answers (stripped, order kept); one string counts as a list of one.

    A non-string answer, or no answer left, is a one-line error: every question needs a gold span.
    """
    answers = [value] if isinstance(value, str) else value
    if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) for a in answers):
        raise BmtptError(f"{locate(where, position)}: field 'answers' must be a list of strings, got {excerpt(value)}")
    distinct = tuple(dict.fromkeys(a.strip() for a in answers if a.strip()))
    if not distinct:
        raise BmtptError(f"{locate(where, position)}: the question has no non-empty gold answer")
    return distinct


def qa_record(row: dict, where: Path | str, position: int | str) -> dict:
    """An MRQA row (question, context, answers) -> the normalised record (hub and local rows alike)."""
    answers = gold_answers(field(row, "answers", where, position), where, position)
    return {
        "question": field(row, "question", where, position, text=True),
        "context": field(row, "context", where, position, text=True),
        "label": answers[0],
        "answers": answers,
    }


_QA_JSONL = jsonl_reader(row_parser(qa_record), keys=QA_KEYS)
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
        raise BmtptError(f"{locate(path, position)}: expected a list under '{key}' (SQuAD v1.1 layout)")
    return value


def _squad_row(qa, context, path: Path, position: str) -> dict:
    """One SQuAD question as an MRQA row: answers become their texts."""
    answers = field(qa, "answers", path, position)
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        raise BmtptError(f"{locate(path, position)}: 'answers' must be a list of {{\"text\", \"answer_start\"}} objects")
    return {
        "question": field(qa, "question", path, position),
        "context": context,
        "answers": [field(a, "text", path, position) for a in answers],
    }


def read_squad_json(path: Path) -> list[dict]:
    """Normalised records of one SQuAD v1.1 JSON file, in file order."""
    try:
        document = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise BmtptError(f"'{path}' line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise BmtptError(f"'{path}': JSON nested too deeply to read") from None
    records = []
    for i, article in enumerate(_squad_list(document, "data", path, "top level")):
        for j, paragraph in enumerate(_squad_list(article, "paragraphs", path, f"article {i}")):
            context = field(paragraph, "context", path, f"article {i} paragraph {j}")
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
