"""A task turned text-to-text: the `Task` type and the `TextExample` it produces (SPEC §7).

Input text is the task name, then each field as `name: value` (the ATTEMPT/MPT convention, e.g.
`rte sentence1: ... sentence2: ...`); `taskless=True` drops the name, for fair zero-shot transfer.
The target is the label's word, so labels mean the same across tasks and rank scoring has real
words to score; `label_style="digits"` gives the baselines' digit targets instead.

Loaders hand `Task.format` normalised records: the input fields, `label` (an index into
`label_words`, or the target text for free-text tasks) and, where a task needs them, `answers`
(every gold answer), `candidates` (this example's own choices for rank scoring) and `group` (the
question an answer option belongs to).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bmtpt_cli.errors import BmtptError

SPLITS = ("train", "validation", "test")
"""Split names every task offers: train, validation (the dev set) and test."""

LABEL_STYLES = ("words", "digits")


@dataclass(frozen=True)
class TextExample:
    """One example as text: what the encoder reads and what the decoder must write."""

    source: str
    """Model input text, e.g. "demo_rte sentence1: ... sentence2: ..."."""
    target: str
    """Target text, e.g. "entailment"."""
    label: int | None
    """Index into the task's label_words; None for free-text (generation) targets."""
    answers: tuple[str, ...] = ()
    """Every gold answer (extractive QA, ReCoRD); scoring takes the best match over them."""
    candidates: tuple[str, ...] = ()
    """This example's own candidates for rank scoring (ReCoRD's entities); empty: the label words."""
    group: str | None = None
    """The question this example belongs to (MultiRC answer options), for per-question metrics."""

    @property
    def references(self) -> tuple[str, ...]:
        """The gold strings a prediction is compared with."""
        return self.answers or (self.target,)


RecordLoader = Callable[[str, "Path | None"], list[dict]]
"""(split, data_dir) -> normalised records of that split (data_dir None: the hub or built-in data)."""


@dataclass(frozen=True)
class Task:
    """A dataset with its text-to-text format, metrics and split loader."""

    name: str
    """Registry name, e.g. "rte"; also the first word of every input."""
    benchmark: str
    """Family the task belongs to: "demo", "glue", "superglue", "mrqa", "others"."""
    input_fields: tuple[str, ...]
    """Record fields written into the input, in order, e.g. ("premise", "hypothesis")."""
    label_words: tuple[str, ...] | None
    """Verbalisers, index = label id; None for free-text tasks (record["label"] is the text)."""
    metrics: tuple[str, ...]
    """Metric names in `bmtpt_cli.scoring.metrics.METRICS`; the first is the task's main metric."""
    load_records: RecordLoader
    """(split, data_dir) -> normalised records (see the module docstring)."""
    description: str = ""
    source: str = ""
    """Where the data comes from, e.g. "nyu-mll/glue (rte)"."""
    split_rule: str = ""
    """How train/validation/test are made (SPEC §7: S, L or O), for `bmtpt tasks`."""
    layout: Callable[[], object] | None = None
    """The files --data-dir must hold for it (`data.layout.TaskLayout`, `bmtpt tasks --layout`); None: generated data."""

    @property
    def metric(self) -> str:
        """The main metric (model selection and the first column of result tables)."""
        return self.metrics[0]

    def format(self, record: dict, *, taskless: bool = False, label_style: str = "words") -> TextExample:
        """Turn one normalised record into a `TextExample` (source text, target, label id, answers)."""
        missing = [field for field in (*self.input_fields, "label") if field not in record]
        if missing:
            raise BmtptError(
                f"task {self.name}: record lacks field(s) {', '.join(missing)}; "
                f"each record needs {', '.join(self.input_fields)} and label"
            )
        if label_style not in LABEL_STYLES:
            raise BmtptError(f"unknown label style {label_style!r}: use words or digits")
        parts = [f"{field}: {record[field]}" for field in self.input_fields]
        source = " ".join(parts if taskless else [self.name, *parts])
        extras = {
            "answers": tuple(record.get("answers", ())),
            "candidates": tuple(record.get("candidates", ())),
            "group": record.get("group"),
        }
        if self.label_words is None:
            return TextExample(source=source, target=str(record["label"]), label=None, **extras)
        label = record["label"]
        if not isinstance(label, int) or not 0 <= label < len(self.label_words):
            raise BmtptError(
                f"task {self.name}: label {label!r} is not one of 0..{len(self.label_words) - 1} "
                f"({', '.join(self.label_words)}); fix the record's label"
            )
        target = str(label) if label_style == "digits" else self.label_words[label]
        return TextExample(source=source, target=target, label=label, **extras)

    def verbalisers(self, label_style: str = "words") -> tuple[str, ...] | None:
        """The strings rank scoring chooses between: the label words, or their digits."""
        if self.label_words is None:
            return None
        return tuple(map(str, range(len(self.label_words)))) if label_style == "digits" else self.label_words

    def examples(
        self, split: str, *, taskless: bool = False, label_style: str = "words", data_dir: Path | None = None
    ) -> list[TextExample]:
        """All examples of one split ("train", "validation" or "test"), formatted.

        A training record with several gold answers (ReCoRD) becomes one example per answer; in
        the other splits it stays one example that is scored against all of them.
        """
        if split not in SPLITS:
            raise BmtptError(f"task {self.name} has no split {split!r}; use one of {', '.join(SPLITS)}")
        records = self.load_records(split, data_dir)
        if not records:
            raise BmtptError(f"task {self.name}: split {split} is empty; check the task's data or pick another split")
        examples = []
        for record in records:
            answers = record.get("answers") or ()
            if split == "train" and len(answers) > 1:
                examples.extend(
                    self.format({**record, "label": answer}, taskless=taskless, label_style=label_style)
                    for answer in answers
                )
            else:
                examples.append(self.format(record, taskless=taskless, label_style=label_style))
        return examples
