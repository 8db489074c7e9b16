"""How a run formats its tasks' examples and where it reads them from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.data.task import Task, TextExample


@dataclass(frozen=True)
class DataConfig:
    """Input and target format and the data source; built from a command's settings by name."""

    taskless: bool  # drop the task name from the inputs
    label_style: str  # words | digits
    data_dir: Path | None  # None: the hub (or the bundled demo tasks)

    def examples(self, task: Task, split: str) -> list[TextExample]:
        """One task's examples of one split, formatted as configured."""
        return task.examples(split, taskless=self.taskless, label_style=self.label_style, data_dir=self.data_dir)

    def by_task(self, tasks: list[Task], split: str) -> dict[str, list[TextExample]]:
        """Each task's examples of one split, by task name."""
        return {task.name: self.examples(task, split) for task in tasks}

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
