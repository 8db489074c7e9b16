"""What `--data-dir` must hold for a task (`bmtpt tasks --layout TASK`).

The answer comes from the task's own reader, not from a second list that could drift from it: each
official split the task's split rule needs is read from an empty stand-in folder that records
every file name (and glob pattern) the reader looks for, in the order it tries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bmtpt_cli.data.splits import LARGE_DEV_SIZE, SPLIT_SEED, SplitRule
from bmtpt_cli.errors import BmtptError


@dataclass(frozen=True)
class TaskLayout:
    """A task's files under --data-dir: its folder, and per official split the names its reader accepts."""

    task: str
    family: str  # the optional subfolder: DIR/<folder>/ or DIR/<family>/<folder>/
    folders: tuple[str, ...]  # accepted folder names, the first found is used
    files: dict[str, list[str]]  # official split -> file names (or glob patterns) tried in order
    uses: dict[str, str]  # official split -> the protocol splits made from it, in words
    notes: dict[str, str] = field(default_factory=dict)  # official split -> why the files cannot hold it

    def as_dict(self) -> dict:
        return {"task": self.task, "family": self.family, "folders": list(self.folders), "files": self.files,
                "uses": self.uses, **({"notes": self.notes} if self.notes else {})}

    def lines(self) -> list[str]:
        """The layout for people, one line each."""
        first = self.folders[0]
        others = f" (or {', '.join(self.folders[1:])})" if len(self.folders) > 1 else ""
        lines = [f"task {self.task}: --data-dir DIR holds DIR/{first}/ or DIR/{self.family}/{first}/{others}, with"]
        for split, names in self.files.items():
            what = " or ".join(names) if names else f"(no file: {self.notes.get(split, 'not readable from files')})"
            lines.append(f"  {what}: the official {split} split → {self.uses[split]}")
        return lines


def official_uses(rule: SplitRule) -> dict[str, str]:
    """Each official split the rule reads → the protocol splits made from it, in words (SPEC §7)."""
    shuffle = f"shuffled with seed {SPLIT_SEED}"
    if rule.kind == "S":
        return {"train": "train", "validation": f"validation and test (its first and second halves, {shuffle})"}
    if rule.kind == "L":
        return {"train": f"train and validation (validation: its first {LARGE_DEV_SIZE:,} examples, {shuffle})",
                rule.test_split: "test"}
    uses: dict[str, list[str]] = {}
    for protocol, officials in rule.official.items():
        for official in officials.split("+"):
            uses.setdefault(official, []).append(protocol)
    return {official: " and ".join(protocols) for official, protocols in uses.items()}


def task_layout(task: str, local, rule: SplitRule) -> TaskLayout:
    """The layout of one benchmark task from its `LocalSource` (family, folders, reader) and split rule."""
    uses = official_uses(rule)
    files, notes = {}, {}
    for split in uses:
        probe = _Probe(local.folders[0])
        try:
            local.read(probe, split, task)
        except BmtptError as exc:  # the reader found nothing, as it must in an empty folder
            if not probe.seen:
                notes[split] = str(exc)
        files[split] = list(dict.fromkeys(probe.seen))
    return TaskLayout(task, local.family, tuple(dict.fromkeys(local.folders)), files, uses, notes)


class _Probe:
    """An empty folder that remembers the names a reader looks for (`folder / name` then `is_file()`, `glob`)."""

    def __init__(self, name: str, seen: list[str] | None = None, parent: _Probe | None = None):
        self.name = name
        self.seen = [] if seen is None else seen
        self._parent = parent

    def __truediv__(self, name) -> _Probe:
        return _Probe(str(name), self.seen, self)

    def is_file(self) -> bool:
        if self._parent is not None:
            self.seen.append(self.name)
        return False

    def is_dir(self) -> bool:
        return False

    def exists(self) -> bool:
        return False

    def is_symlink(self) -> bool:
        return False

    def iterdir(self):
        return iter(())

    def glob(self, pattern: str):
        self.seen.append(pattern)
        return iter(())

    def __str__(self) -> str:
        return self.name if self._parent is None else f"{self._parent}/{self.name}"

    __fspath__ = __str__
