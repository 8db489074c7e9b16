"""The GLUE tasks of SPEC §7: from `nyu-mll/glue` on the hub, or the GLUE distribution's TSV files.

TSV quirks handled (see the GLUE distribution): tab-separated with quoting off, CoLA without a
header, MRPC with a BOM, MNLI's matched/mismatched dev files. Official test files have no labels and
are never used: the protocol builds dev and test from train and validation (SPEC §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from bmtpt_cli.data.benchmark import HubSource, LocalSource, benchmark_task
from bmtpt_cli.data.sources import field, label_id, read_tsv, task_file
from bmtpt_cli.data.splits import LARGE, SMALL, SplitRule
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError, excerpt

STSB_GRID = tuple(f"{i / 5:.1f}" for i in range(26))  # 0.0, 0.2, …, 5.0: STS-B targets and rank candidates


def stsb_target(score: float | str) -> str:
    """An STS-B similarity score rounded to the 0.2 grid, as text (not 0.1: a baseline bug, SPEC §7).

    T5's rule, `tf.round(score * 5) / 5` printed with one decimal: `tf.round` rounds half to EVEN,
    so a tie goes to the even multiple of 0.2 (0.1 → 0.0, 0.3 → 0.4, 2.5 → 2.4, 3.3 → 3.2). Ties
    are decided in decimal on the score as written (a TSV's decimal string; a float through its
    shortest repr), so binary float noise cannot tip them. On the GLUE files this is the same as
    T5's float32 arithmetic for every row; it changes 91 of 5,749 training and 24 of 1,500
    validation targets from a half-up rule.
    """
    value = Decimal(str(score))
    if not 0 <= value <= 5:
        raise ValueError(f"STS-B score {score} is outside [0, 5]")
    steps = (value * 5).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
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


TSV_KEY = "column/field"
"""The word errors use for a column missing from a row of a GLUE TSV file."""


def _tsv_reader(fmt: GlueFormat):
    """A `LocalSource` reader of one GLUE task's TSV files."""

    def read(folder: Path, split: str, task: str) -> list[dict]:
        if split not in fmt.files:
            raise BmtptError(f"task {task} has no official {split} split in the GLUE files")
        path = task_file(folder, fmt.files[split], task, split)
        records = []
        for line, row in read_tsv(path, header=fmt.header):
            record = {name: _cell(row, column, path, line) for name, column in fmt.columns.items()}
            record.update(_label(_cell(row, fmt.label, path, line), fmt.labels, path, line))
            records.append(record)
        return records

    return read


def _cell(row: dict | list, column: str | int, path: Path, line: int) -> str:
    """The value under `column` of a TSV row: a header name (dict rows) or an index (headerless rows)."""
    if isinstance(row, dict):
        return field(row, column, path, line, what=TSV_KEY)
    if column >= len(row):
        raise BmtptError(f"'{path}' line {line}: {len(row)} fields, expected at least {column + 1}")
    return row[column]


def _label(value, labels: dict | None, path, line) -> dict:
    """The record's label: the id `labels` gives the raw value, or STS-B's rounded score and its grid."""
    if labels is not None:
        return {"label": label_id(value, labels, path, line)}
    try:
        return {"label": stsb_target(value.strip()), "candidates": STSB_GRID}
    except (ValueError, ArithmeticError):
        raise BmtptError(f"'{path}' line {line}: score {excerpt(value)} is not a number in [0, 5]") from None


def float32_text(value: float) -> str:
    """The shortest decimal text of `value` as a float32: the hub's STS-B scores are float32, so
    3.1 arrives as 3.0999999046…; its float32 text "3.1" lets `stsb_target` see the tie the TSV
    file has (T5's float32 `tf.round` rounds it like the decimal)."""
    import numpy as np

    return np.format_float_positional(np.float32(value), trim="-")


def _hub_normaliser(fields: dict[str, str], regression: bool = False):
    """Hub normaliser: record field <- hub column as `fields` says, and the label (None for unlabelled rows)."""

    def normalise(row: dict, where: str, index: int) -> dict | None:
        label = row["label"]
        if not regression and label < 0:  # unlabelled rows (official test)
            return None
        record = {name: row[column] for name, column in fields.items()}
        record.update({"label": stsb_target(float32_text(label)), "candidates": STSB_GRID} if regression else {"label": int(label)})
        return record

    return normalise


@dataclass(frozen=True)
class GlueSpec:
    """One GLUE task: its record fields, label words, metrics, split rule, hub config and TSV layout.

    The hub's columns have the record fields' names (true of all eight tasks).
    """

    name: str
    fields: tuple[str, ...]  # record fields, in input order
    label_words: tuple[str, ...] | None  # None: STS-B, a score rounded onto STSB_GRID
    metrics: tuple[str, ...]
    rule: SplitRule
    config: str  # nyu-mll/glue config
    tsv: GlueFormat
    description: str


_BINARY = {"0": 0, "1": 1}
_NLI3 = {"entailment": 0, "neutral": 1, "contradiction": 2}
_NLI2 = {"entailment": 0, "not_entailment": 1}
_TRAIN_DEV = {"train": ("train.tsv",), "validation": ("dev.tsv",)}


_SPECS = (
    GlueSpec(
        name="mnli",
        fields=("premise", "hypothesis"),
        label_words=("entailment", "neutral", "contradiction"),
        metrics=("accuracy",),
        rule=SplitRule("O", {"train": "train", "validation": "validation_mismatched", "test": "validation_matched"}),
        config="mnli",
        tsv=GlueFormat(
            folder="MNLI",
            files={"train": ("train.tsv",), "validation_matched": ("dev_matched.tsv",),
                   "validation_mismatched": ("dev_mismatched.tsv",)},
            columns={"premise": "sentence1", "hypothesis": "sentence2"},
            label="gold_label",
            labels=_NLI3,
        ),
        description="multi-genre natural language inference",
    ),
    GlueSpec(
        name="qqp",
        fields=("question1", "question2"),
        label_words=("not_duplicate", "duplicate"),
        metrics=("f1", "accuracy"),
        rule=LARGE,
        config="qqp",
        tsv=GlueFormat(
            folder="QQP",
            files=_TRAIN_DEV,
            columns={"question1": "question1", "question2": "question2"},
            label="is_duplicate",
            labels=_BINARY,
        ),
        description="Quora question pairs: duplicate or not",
    ),
    GlueSpec(
        name="qnli",
        fields=("question", "sentence"),
        label_words=("entailment", "not_entailment"),
        metrics=("accuracy",),
        rule=LARGE,
        config="qnli",
        tsv=GlueFormat(
            folder="QNLI",
            files=_TRAIN_DEV,
            columns={"question": "question", "sentence": "sentence"},
            label="label",
            labels=_NLI2,
        ),
        description="does the sentence answer the question",
    ),
    GlueSpec(
        name="sst2",
        fields=("sentence",),
        label_words=("negative", "positive"),
        metrics=("accuracy",),
        rule=LARGE,
        config="sst2",
        tsv=GlueFormat(folder="SST-2", files=_TRAIN_DEV, columns={"sentence": "sentence"}, label="label", labels=_BINARY),
        description="movie review sentence sentiment",
    ),
    GlueSpec(
        name="stsb",
        fields=("sentence1", "sentence2"),
        label_words=None,
        metrics=("pearson", "spearman"),
        rule=SMALL,
        config="stsb",
        tsv=GlueFormat(
            folder="STS-B",
            files=_TRAIN_DEV,
            columns={"sentence1": "sentence1", "sentence2": "sentence2"},
            label="score",
            labels=None,
        ),
        description="semantic similarity 0-5, rounded to 0.2",
    ),
    GlueSpec(
        name="mrpc",
        fields=("sentence1", "sentence2"),
        label_words=("not_equivalent", "equivalent"),
        metrics=("f1", "accuracy"),
        rule=SMALL,
        config="mrpc",
        tsv=GlueFormat(
            folder="MRPC",
            files=_TRAIN_DEV,
            columns={"sentence1": "#1 String", "sentence2": "#2 String"},
            label="Quality",
            labels=_BINARY,
        ),
        description="paraphrase or not",
    ),
    GlueSpec(
        name="rte",
        fields=("sentence1", "sentence2"),
        label_words=("entailment", "not_entailment"),
        metrics=("accuracy",),
        rule=SMALL,
        config="rte",
        tsv=GlueFormat(
            folder="RTE",
            files=_TRAIN_DEV,
            columns={"sentence1": "sentence1", "sentence2": "sentence2"},
            label="label",
            labels=_NLI2,
        ),
        description="recognising textual entailment",
    ),
    GlueSpec(
        name="cola",
        fields=("sentence",),
        label_words=("unacceptable", "acceptable"),
        metrics=("mcc", "accuracy"),
        rule=SMALL,
        config="cola",
        tsv=GlueFormat(
            folder="CoLA", files=_TRAIN_DEV, columns={"sentence": 3}, label=1, labels=_BINARY, header=False
        ),
        description="grammatical acceptability",
    ),
)


def glue_task(spec: GlueSpec) -> Task:
    """The registry `Task` of one GLUE spec: `nyu-mll/glue` on the hub, or the TSV files."""
    return benchmark_task(
        name=spec.name,
        benchmark="glue",
        input_fields=spec.fields,
        label_words=spec.label_words,
        metrics=spec.metrics,
        rule=spec.rule,
        hub=HubSource(
            "nyu-mll/glue", spec.config,
            _hub_normaliser({name: name for name in spec.fields}, regression=spec.label_words is None),
        ),
        local=LocalSource("glue", (spec.tsv.folder, spec.tsv.folder.lower(), spec.name), _tsv_reader(spec.tsv)),
        description=spec.description,
    )


GLUE_TASKS: dict[str, Task] = {spec.name: glue_task(spec) for spec in _SPECS}
"""The eight GLUE tasks by registry name."""
