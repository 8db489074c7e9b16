"""A task turned text-to-text: the `Task` type and the `TextExample` it produces (SPEC §7).

Input text is the task name, then each field as `name: value` (the ATTEMPT/MPT convention, e.g.
`rte sentence1: ... sentence2: ...`); `taskless=True` drops the name, for fair zero-shot transfer.
The target is the label's word, so labels mean the same across tasks and rank scoring has real
words to score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bmtpt_cli.errors import BmtptError

SPLITS = ("train", "validation", "test")
"""Split names every task offers: train, validation (the dev set) and test."""


@dataclass(frozen=True)
class TextExample:
    """One example as text: what the encoder reads and what the decoder must write."""

    source: str
    """Model input text, e.g. "demo_rte sentence1: ... sentence2: ..."."""
    target: str
    """Target text, e.g. "entailment"."""
    label: int | None
    """Index into the task's label_words; None for free-text (generation) targets."""


@dataclass(frozen=True)
class Task:
    """A dataset with its text-to-text format, metric and split loader."""

    name: str
    """Registry name, e.g. "demo_sentiment"; also the first word of every input."""
    benchmark: str
    """Family the task belongs to: "demo" (later "glue", "superglue", "mrqa", "others")."""
    input_fields: tuple[str, ...]
    """Record fields written into the input, in order, e.g. ("premise", "hypothesis")."""
    label_words: tuple[str, ...] | None
    """Verbalisers, index = label id; None for generation tasks (record["label"] is the text)."""
    metric: str
    """Name of the metric in `bmtpt_cli.evaluation.metrics.METRICS`, e.g. "accuracy"."""
    load_records: Callable[[str], list[dict]]
    """Split name -> raw records: dicts holding the input fields and "label"."""
    description: str = ""

    def format(self, record: dict, *, taskless: bool = False) -> TextExample:
        """Turn one raw record into `TextExample` (source text, target word, label id)."""
        missing = [field for field in (*self.input_fields, "label") if field not in record]
        if missing:
            raise BmtptError(
                f"task {self.name}: record lacks field(s) {', '.join(missing)}; "
                f"each record needs {', '.join(self.input_fields)} and label"
            )
        parts = [f"{field}: {record[field]}" for field in self.input_fields]
        source = " ".join(parts if taskless else [self.name, *parts])
        if self.label_words is None:
            return TextExample(source=source, target=str(record["label"]), label=None)
        label = record["label"]
        if not isinstance(label, int) or not 0 <= label < len(self.label_words):
            raise BmtptError(
                f"task {self.name}: label {label!r} is not one of 0..{len(self.label_words) - 1} "
                f"({', '.join(self.label_words)}); fix the record's label"
            )
        return TextExample(source=source, target=self.label_words[label], label=label)

    def examples(self, split: str, *, taskless: bool = False) -> list[TextExample]:
        """All examples of one split ("train", "validation" or "test"), formatted."""
        if split not in SPLITS:
            raise BmtptError(
                f"task {self.name} has no split {split!r}; use one of {', '.join(SPLITS)}"
            )
        records = self.load_records(split)
        if not records:
            raise BmtptError(
                f"task {self.name}: split {split} is empty; "
                "check the task's data or pick another split"
            )
        return [self.format(record, taskless=taskless) for record in records]
