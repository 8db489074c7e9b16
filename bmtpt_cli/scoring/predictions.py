"""`bmtpt evaluate --predictions`: every scored example's prediction, as JSON lines beside the results.

One record per example, in the order of the scored split: the task, the example's index in that
split, its input text, the gold target (and every gold answer where there are several), the
prediction, whether it matches a gold string exactly, and with rank scoring each candidate's score
(the rule `--rank-score` names: the sum or mean of its token log-probabilities).
"""

from __future__ import annotations

import json
from pathlib import Path

from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.runtime.files import write_text_atomic
from bmtpt_cli.runtime.outputs import sidecar

SUFFIX = ".predictions.jsonl"


def predictions_path(out: Path) -> Path:
    """Where `evaluate --predictions` writes: beside the results file."""
    return sidecar(out, SUFFIX)


def example_records(
    task: Task, examples: list[TextExample], predictions: list[str], scores: list[dict[str, float]] | None
) -> list[dict]:
    """One record per example (`scores`: each example's {candidate: score} under rank scoring, else None)."""
    records = []
    for index, (example, prediction) in enumerate(zip(examples, predictions)):
        record = {"task": task.name, "index": index, "input": example.source, "gold": example.target}
        if example.answers:
            record["answers"] = list(example.answers)
        record |= {"prediction": prediction, "exact_match": prediction in example.references}
        if scores is not None:
            record["scores"] = scores[index]
        records.append(record)
    return records


def write_predictions(out: Path, records: list[dict]) -> Path:
    """Write the records as JSON lines beside `out`, atomically; returns the path."""
    path = predictions_path(out)
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    return path
