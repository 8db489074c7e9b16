"""A directory of per-task prompts: one bmtpt prompts file per task (`<task>.safetensors`).

`bmtpt source --per-task` writes it (one prompt per source task, SPoT-style); SPoT-style retrieval
(`adapt --init retrieve:DIR`) and `bmtpt transfer-matrix` read it. Any prompts file in the folder
counts, so prompts from `bmtpt adapt` can be dropped in beside them; each of its tasks contributes
its composed prompt W ⊙ a_k b_kᵀ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli.artifacts.native import PROMPTS, load_prompts, read_kind
from bmtpt_cli.errors import BmtptError


@dataclass(frozen=True)
class TaskPrompt:
    """One task's prompt `(l, d)` read from a per-task directory, with the file it came from."""

    task: str
    prompt: torch.Tensor  # (l, d)
    path: Path
    metadata: dict[str, str]


def task_prompt_path(directory: Path, task: str) -> Path:
    """Where `bmtpt source --per-task` writes the prompt of `task`."""
    return Path(directory) / f"{task}.safetensors"


def read_task_prompts(directory: Path, *, flag: str = "--prompts-dir") -> dict[str, TaskPrompt]:
    """Every task prompt in `directory`, by task name (sorted); files that are not prompts are skipped.

    Refused in one line: a missing directory, one with no prompts, or a task found in two files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BmtptError(f"{flag} '{directory}' is not a directory: run `bmtpt source --per-task --out {directory}` first")
    found: dict[str, TaskPrompt] = {}
    for path in sorted(directory.glob("*.safetensors")):
        if read_kind(path) != PROMPTS:
            continue
        artifact = load_prompts(path, flag=flag)
        for task in artifact.tasks:
            if task in found:
                raise BmtptError(
                    f"task '{task}' has prompts in both '{found[task].path.name}' and '{path.name}' in {directory}: "
                    "keep one of the files"
                )
            found[task] = TaskPrompt(task, artifact.prompt(task), path, artifact.metadata)
    if not found:
        raise BmtptError(f"{flag} '{directory}' holds no bmtpt prompts files: run `bmtpt source --per-task --out {directory}`")
    return dict(sorted(found.items()))
