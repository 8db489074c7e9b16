"""How a run formats its tasks' examples and where it reads them from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.errors import BmtptError


@dataclass(frozen=True)
class DataConfig:
    """Input and target format and the data source; built from a command's settings by name."""

    taskless: bool  # drop the task name from the inputs
    label_style: str  # words | digits
    data_dir: Path | None  # None: the hub (or the bundled demo tasks)
    model: str | None = None  # the run's --model: the toy model's vocabulary is checked against the examples

    def examples(self, task: Task, split: str) -> list[TextExample]:
        """One task's examples of one split, formatted as configured."""
        return task.examples(split, taskless=self.taskless, label_style=self.label_style, data_dir=self.data_dir)

    def by_task(self, tasks: list[Task], split: str) -> dict[str, list[TextExample]]:
        """Each task's examples of one split, by task name."""
        return self.splits(tasks, split)[split]

    def train_reader(self):
        """A function from task names to their training examples (formatted as configured), each task read
        once however often it is asked for: what a method that trains on other tasks' data reads them with."""
        read: dict[str, list[TextExample]] = {}

        def train_examples(names: list[str]) -> dict[str, list[TextExample]]:
            missing = [name for name in names if name not in read]
            if missing:
                read.update(self.by_task(resolve_tasks(missing), "train"))
            return {name: read[name] for name in names}

        return train_examples

    def splits(self, tasks: list[Task], *splits: str) -> dict[str, dict[str, list[TextExample]]]:
        """Each split's examples by task; every task and split that cannot be read is named in one error."""
        from bmtpt_cli.data.sources import HubUnreachable

        loaded: dict[str, dict[str, list[TextExample]]] = {split: {} for split in splits}
        problems: list[str] = []
        for position, task in enumerate(tasks):
            for split in splits:
                try:
                    loaded[split][task.name] = self.examples(task, split)
                except HubUnreachable as exc:  # the others would wait for the network just the same
                    others = [t.name for t in tasks[position + 1 :] if t.benchmark != "demo"]
                    also = f" (so were not tried: {', '.join(others)})" if others else ""
                    raise BmtptError("; ".join([*problems, str(exc) + also])) from None
                except BmtptError as exc:
                    problems.append(str(exc))
        if len(problems) == 1:
            raise BmtptError(problems[0])
        if problems:
            raise BmtptError(f"{len(problems)} task splits cannot be read: " + "; ".join(problems))
        from bmtpt_cli.data.vocabulary import TOY_MODEL_NAMES, check_toy_vocabulary

        if self.model in TOY_MODEL_NAMES:  # their closed vocabularies: real text would read as <unk> and still be scored
            check_toy_vocabulary(tasks, loaded, self.label_style, self.model)
        return loaded

    def provenance(self, tasks: list[Task]) -> dict:
        """Where a run's examples came from: the data folder or each task's hub source, and the format."""
        return {
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "sources": {task.name: (f"files under {self.data_dir}" if self.data_dir and task.benchmark != "demo" else task.source)
                        for task in tasks},
            "taskless": self.taskless,
            "label_style": self.label_style,
        }

    def fingerprint(self) -> dict:
        """The data settings that change which examples a run sees."""
        return {
            "taskless": self.taskless,
            "label_style": self.label_style,
            "data_dir": str(self.data_dir) if self.data_dir else None,
        }


def examples_sha256(examples: dict) -> str:
    """Hex SHA-256 of the examples a run reads: `examples` maps names (splits, tasks) to lists of
    `TextExample` or to further such maps; every field of every example counts, in order.

    Part of the fingerprints, so a resume (or a kept result) notices when the data behind the same
    settings changed: an edited file under --data-dir, a new hub revision. Hashing the examples
    themselves rather than files' sizes and times sees every change of content, and costs about a
    second per 100,000 examples.
    """
    digest = hashlib.sha256()

    def add(value) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                digest.update(json.dumps(["name", str(key)]).encode("utf-8") + b"\n")
                add(value[key])
            return
        digest.update(json.dumps(["examples", len(value)]).encode("utf-8") + b"\n")
        for e in value:
            fields = [e.source, e.target, e.label, list(e.answers), list(e.candidates), e.group]
            digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")

    add(examples)
    return digest.hexdigest()
