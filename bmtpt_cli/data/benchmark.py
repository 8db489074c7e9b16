"""Building a registry `Task` for a benchmark dataset: hub source, local files, split protocol.

A benchmark task is defined by where its official splits come from — a hub dataset (`HubSource`)
or files under `--data-dir` (`LocalSource`) — how one raw row becomes a normalised record, and its
split rule. Official splits are read once per process and cached; the protocol splits are built
from them deterministically.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bmtpt_cli.data.layout import task_layout
from bmtpt_cli.data.sources import find_task_dir, load_hub_split
from bmtpt_cli.data.splits import SplitRule, protocol_split
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError


@dataclass(frozen=True)
class HubSource:
    """A dataset on the Hugging Face hub and how its rows become records."""

    repo: str
    config: str | None
    normalise: Callable[[dict, str, int], dict | None]  # (row, where, index) -> record or None (skip)
    revision: str | None = None
    split_names: dict[str, str] = field(default_factory=dict)  # official split -> hub split, if they differ
    keep: Callable[[dict], bool] | None = None  # row filter applied before normalising (MRQA subsets)

    def describe(self) -> str:
        return f"{self.repo}" + (f" ({self.config})" if self.config else "")

    def load(self, split: str) -> list[dict]:
        rows = load_hub_split(
            self.repo, self.config, self.split_names.get(split, split), revision=self.revision, keep=self.keep
        )
        where = f"{self.describe()} {split}"
        records = []
        for index, row in enumerate(rows):
            record = self.normalise(row, where, index)
            if record is not None:
                records.append(record)
        return records


@dataclass(frozen=True)
class LocalSource:
    """Files of a task under --data-dir: its family subfolder, folder names, and a reader."""

    family: str  # "glue", "superglue", "mrqa", "others"
    folders: tuple[str, ...]  # e.g. ("RTE", "rte")
    read: Callable[[Path, str, str], list[dict]]  # (task folder, official split, task name) -> records

    def load(self, data_dir: Path, split: str, task: str) -> list[dict]:
        folder = find_task_dir(data_dir, self.family, self.folders, task)
        return self.read(folder, split, task)


def benchmark_task(
    *,
    name: str,
    benchmark: str,
    input_fields: tuple[str, ...],
    label_words: tuple[str, ...] | None,
    metrics: tuple[str, ...],
    rule: SplitRule,
    hub: HubSource,
    local: LocalSource,
    description: str = "",
) -> Task:
    """A `Task` whose records come from the hub, or from `data_dir` when one is given."""

    @functools.lru_cache(maxsize=None)
    def official(split: str, data_dir: str | None) -> tuple[dict, ...]:
        records = local.load(Path(data_dir), split, name) if data_dir else hub.load(split)
        if not records:
            where = f"--data-dir '{data_dir}'" if data_dir else hub.describe()
            raise BmtptError(f"task {name}: the official {split} split from {where} has no labelled examples")
        return tuple(records)

    def load_records(split: str, data_dir: Path | None) -> list[dict]:
        key = str(data_dir) if data_dir is not None else None
        return [dict(r) for r in protocol_split(rule, split, lambda official_split: list(official(official_split, key)))]

    return Task(
        name=name,
        benchmark=benchmark,
        input_fields=input_fields,
        label_words=label_words,
        metrics=metrics,
        load_records=load_records,
        description=description,
        source=hub.describe(),
        split_rule=rule.describe(),
        layout=functools.partial(task_layout, name, local, rule),
    )
