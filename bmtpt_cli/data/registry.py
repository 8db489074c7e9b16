"""The task registry: task names -> `Task`, and the one-line errors for names it does not know.

`TASKS` is a plain dict filled right here; a benchmark family is added by adding its entries
below (no registration at import time).
"""

from __future__ import annotations

import difflib
from typing import Iterable

from bmtpt_cli.data.demo import DEMO_TASKS
from bmtpt_cli.data.glue import GLUE_TASKS
from bmtpt_cli.data.mrqa import MRQA_TASKS
from bmtpt_cli.data.others import OTHER_TASKS
from bmtpt_cli.data.superglue import SUPERGLUE_TASKS
from bmtpt_cli.data.task import Task
from bmtpt_cli.data.toyworld import TOY_TASKS
from bmtpt_cli.data.toyworld3 import TOY3_TASKS
from bmtpt_cli.errors import BmtptError, excerpt

TASKS: dict[str, Task] = {
    **DEMO_TASKS,
    **GLUE_TASKS,
    **SUPERGLUE_TASKS,
    **MRQA_TASKS,
    **OTHER_TASKS,
    **TOY_TASKS,
    **TOY3_TASKS,
}

GENERATED_BENCHMARKS = ("demo", "toyworld", "toyworld3")
"""Families bmtpt generates itself (no files, no hub)."""

BENCHMARK_TASKS = [name for name, task in TASKS.items() if task.benchmark not in GENERATED_BENCHMARKS]
"""The 28 tasks of SPEC §6-7 (the generated demo and toy-world tasks aside)."""


def available_tasks() -> list[str]:
    """Names of the tasks that can be loaded now, sorted."""
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task called `name` (case-insensitive); BmtptError naming it if there is none."""
    return resolve_tasks([name])[0]


def resolve_tasks(names: Iterable[str] | str) -> list[Task]:
    """Tasks for names given as a list and/or comma-separated strings, in the order given.

    Names are stripped and matched case-insensitively; empty entries (a trailing comma) are
    dropped. An empty list, a repeated name, or any unknown name raises one BmtptError.
    """
    if isinstance(names, str):
        names = [names]
    wanted = [piece.strip().lower() for name in names for piece in name.split(",")]
    wanted = [name for name in wanted if name]
    if not wanted:
        raise BmtptError(
            "no tasks given; name at least one, comma-separated "
            f"(`bmtpt tasks` lists the {len(TASKS)} available tasks)"
        )
    repeated = sorted({name for name in wanted if wanted.count(name) > 1})
    if repeated:
        raise BmtptError(f"task(s) given more than once: {', '.join(repeated)}; list each task once")
    missing = [name for name in wanted if name not in TASKS]
    if missing:
        raise BmtptError(_unknown_message(missing))
    return [TASKS[name] for name in wanted]


def _unknown_message(missing: list[str]) -> str:
    """One line: the unknown names, each with its close matches, and where to see them all."""
    described = []
    for name in missing[:5]:  # a name may come from a crafted file: shown short and escaped
        close = difflib.get_close_matches(name, list(TASKS), n=3, cutoff=0.75) if len(name) <= 100 else []
        shown = excerpt(name, quoted=False)
        described.append(f"{shown} (did you mean {' or '.join(close)}?)" if close else shown)
    if len(missing) > 5:
        described.append(f"… ({len(missing) - 5} more)")
    return f"unknown tasks: {', '.join(described)}; `bmtpt tasks` lists the {len(TASKS)} available tasks"
