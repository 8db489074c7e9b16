"""The GLUE tasks of SPEC §7: from `nyu-mll/glue` on the hub, or the GLUE distribution's TSV files.

TSV quirks handled (see the GLUE distribution): tab-separated with quoting off, CoLA without a
header, MRPC with a BOM, MNLI's matched/mismatched dev files. Official test files have no labels and
are never used: the protocol builds dev and test from train and validation (SPEC §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from bmtpt_cli.data.benchmark import HubSource, LocalSource, benchmark_task
from bmtpt_cli.data.sources import field, label_index, read_tsv, task_file
from bmtpt_cli.data.splits import LARGE, SMALL, SplitRule
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError

STSB_GRID = tuple(f"{i / 5:.1f}" for i in range(26))  # 0.0, 0.2, …, 5.0: STS-B targets and rank candidates


def stsb_target(score: float | str) -> str:
    """An STS-B similarity score rounded to the 0.2 grid, as text (not 0.1: a baseline bug, SPEC §7).

    Halves round up (3.3 → 3.4), computed in decimal so float noise cannot tip a tie.
    """
    value = Decimal(str(score))
    if not 0 <= value <= 5:
        raise ValueError(f"STS-B score {score} is outside [0, 5]")
    steps = (value * 5).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{steps / 5:.1f}"


@dataclass(frozen=True)
class GlueFormat:
    """One GLUE task's TSV layout: files per official split and which column is what."""

    folder: str
    files: dict[str, tuple[str, ...]]  # official split -> candidate file names
    columns: dict[str, str | int]  # record field -> TSV column name (or index when no header)
    label: str | int  # label column
    labels: dict[str, int] | None  # raw label text -> id; None: STS-B's float score
    header: bool = True


def _tsv_reader(fmt: GlueFormat):
    def read(folder: Path, split: str, task: str) -> list[dict]:
        if split not in fmt.files:
            raise BmtptError(f"task {task} has no official {split} split in the GLUE files")
        path = task_file(folder, fmt.files[split], task, split)
        records = []
        for line, row in read_tsv(path, header=fmt.header):
            get = (lambda key: field(row, key, path, line)) if fmt.header else (lambda key: _column(row, key, path, line))
            record = {name: get(column) for name, column in fmt.columns.items()}
            record.update(_label(get(fmt.label), fmt.labels, path, line))
            records.append(record)
        return records

    return read


def _column(row: list, index: int, path: Path, line: int) -> str:
    if index >= len(row):
        raise BmtptError(f"'{path}' line {line}: {len(row)} fields, expected at least {index + 1}")
    return row[index]


def _label(value, labels: dict | None, path, line) -> dict:
    if labels is not None:
        return {"label": label_index(value, labels, path, line)}
    try:
        return {"label": stsb_target(value.strip()), "candidates": STSB_GRID}
    except (ValueError, ArithmeticError):
        raise BmtptError(f"'{path}' line {line}: score {value!r} is not a number in [0, 5]") from None


def _hub_normaliser(fields: dict[str, str], regression: bool = False):
    def normalise(row: dict, where: str, index: int) -> dict | None:
        label = row["label"]
        if not regression and label < 0:  # unlabelled rows (official test)
            return None
        record = {name: row[column] for name, column in fields.items()}
        record.update({"label": stsb_target(float(label)), "candidates": STSB_GRID} if regression else {"label": int(label)})
        return record

    return normalise


_BINARY = {"0": 0, "1": 1}
_NLI3 = {"entailment": 0, "neutral": 1, "contradiction": 2}
_NLI2 = {"entailment": 0, "not_entailment": 1}

# name: (fields, label words, metrics, rule, hub config, hub fields, TSV format, description)
_SPECS = {
    "mnli": (
        ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
        SplitRule("O", {"train": "train", "validation": "validation_mismatched", "test": "validation_matched"}),
        {"premise": "premise", "hypothesis": "hypothesis"},
        GlueFormat("MNLI", {"train": ("train.tsv",), "validation_matched": ("dev_matched.tsv",),
                            "validation_mismatched": ("dev_mismatched.tsv",)},
                   {"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label", _NLI3),
        "multi-genre natural language inference",
    ),
    "qqp": (
        ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy"), LARGE,
        {"question1": "question1", "question2": "question2"},
        GlueFormat("QQP", {"train": ("train.tsv",), "validation": ("dev.tsv",)},
                   {"question1": "question1", "question2": "question2"}, "is_duplicate", _BINARY),
        "Quora question pairs: duplicate or not",
    ),
    "qnli": (
        ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",), LARGE,
        {"question": "question", "sentence": "sentence"},
        GlueFormat("QNLI", {"train": ("train.tsv",), "validation": ("dev.tsv",)},
                   {"question": "question", "sentence": "sentence"}, "label", _NLI2),
        "does the sentence answer the question",
    ),
    "sst2": (
        ("sentence",), ("negative", "positive"), ("accuracy",), LARGE,
        {"sentence": "sentence"},
        GlueFormat("SST-2", {"train": ("train.tsv",), "validation": ("dev.tsv",)}, {"sentence": "sentence"}, "label", _BINARY),
        "movie review sentence sentiment",
    ),
    "stsb": (
        ("sentence1", "sentence2"), None, ("pearson", "spearman"), SMALL,
        {"sentence1": "sentence1", "sentence2": "sentence2"},
        GlueFormat("STS-B", {"train": ("train.tsv",), "validation": ("dev.tsv",)},
                   {"sentence1": "sentence1", "sentence2": "sentence2"}, "score", None),
        "semantic similarity 0-5, rounded to 0.2",
    ),
    "mrpc": (
        ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy"), SMALL,
        {"sentence1": "sentence1", "sentence2": "sentence2"},
        GlueFormat("MRPC", {"train": ("train.tsv",), "validation": ("dev.tsv",)},
                   {"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality", _BINARY),
        "paraphrase or not",
    ),
    "rte": (
        ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",), SMALL,
        {"sentence1": "sentence1", "sentence2": "sentence2"},
        GlueFormat("RTE", {"train": ("train.tsv",), "validation": ("dev.tsv",)},
                   {"sentence1": "sentence1", "sentence2": "sentence2"}, "label", _NLI2),
        "recognising textual entailment",
    ),
    "cola": (
        ("sentence",), ("unacceptable", "acceptable"), ("mcc", "accuracy"), SMALL,
        {"sentence": "sentence"},
        GlueFormat("CoLA", {"train": ("train.tsv",), "validation": ("dev.tsv",)}, {"sentence": 3}, 1, _BINARY, header=False),
        "grammatical acceptability",
    ),
}

_HUB_CONFIG = {"sst2": "sst2", "stsb": "stsb"}

GLUE_TASKS: dict[str, Task] = {
    name: benchmark_task(
        name=name,
        benchmark="glue",
        input_fields=fields,
        label_words=words,
        metrics=metrics,
        rule=rule,
        hub=HubSource("nyu-mll/glue", _HUB_CONFIG.get(name, name), _hub_normaliser(hub_fields, regression=words is None)),
        local=LocalSource("glue", (fmt.folder, fmt.folder.lower(), name), _tsv_reader(fmt)),
        description=description,
    )
    for name, (fields, words, metrics, rule, hub_fields, fmt, description) in _SPECS.items()
}
"""The eight GLUE tasks by registry name."""
