"""Drawing batches and few-shot subsets.

Every random choice goes through an explicit `torch.Generator` (or, for `kshot`, one seeded from
an explicit seed), so a training run can save the generator's state with its checkpoint and
continue bit-identically after a restore.
"""

from __future__ import annotations

import torch

from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError

Batch = list[tuple[str, TextExample]]
"""A batch: (task name, example) pairs."""


def source_batch(
    examples_by_task: dict[str, list[TextExample]],
    *,
    per_task: int,
    sample_tasks: int | None,
    generator: torch.Generator,
) -> Batch:
    """One source-training batch (SPEC §2).

    With `sample_tasks=None` every task contributes; otherwise κ = `sample_tasks` tasks are drawn
    uniformly without replacement (1 <= κ <= K). Each chosen task contributes `per_task` examples
    drawn uniformly WITH replacement. The batch lists the chosen tasks in the dict's order, each
    task's examples together: len = per_task * (K or κ).
    """
    _check_tasks(examples_by_task)
    if per_task < 1:
        raise BmtptError(f"examples per task must be at least 1, got {per_task}; raise it")
    names = list(examples_by_task)
    if sample_tasks is None:
        chosen = names
    else:
        if not 1 <= sample_tasks <= len(names):
            raise BmtptError(
                f"cannot sample {sample_tasks} of {len(names)} source tasks; "
                f"choose a number from 1 to {len(names)}"
            )
        drawn = torch.randperm(len(names), generator=generator)[:sample_tasks]
        chosen = [names[i] for i in sorted(drawn.tolist())]
    batch = []
    for name in chosen:
        examples = examples_by_task[name]
        picks = torch.randint(len(examples), (per_task,), generator=generator)
        batch.extend((name, examples[i]) for i in picks.tolist())
    return batch


def mixed_batch(
    examples_by_task: dict[str, list[TextExample]],
    *,
    batch_size: int,
    generator: torch.Generator,
    cap: int | None = None,
) -> Batch:
    """A batch mixed example-proportionally across tasks (Raffel et al. 2020, §3.5.2).

    Each of the `batch_size` slots independently draws its task with probability proportional to
    min(n_k, cap) (n_k = the task's example count; cap None = no limit), then one example of that
    task uniformly at random. Slots are in draw order, so tasks are interleaved.
    """
    _check_tasks(examples_by_task)
    if batch_size < 1:
        raise BmtptError(f"batch size must be at least 1, got {batch_size}; raise it")
    if cap is not None and cap < 1:
        raise BmtptError(f"mixing cap must be at least 1 (or unset), got {cap}; raise it")
    names = list(examples_by_task)
    sizes = torch.tensor([len(examples_by_task[name]) for name in names], dtype=torch.float64)
    rates = sizes if cap is None else sizes.clamp(max=cap)
    tasks = torch.multinomial(rates, batch_size, replacement=True, generator=generator)
    # uniform index within each slot's task: floor(u * n_k), u ~ U[0, 1)
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    rows = (u * sizes[tasks]).long().clamp(max=sizes[tasks].long() - 1)
    return [
        (names[k], examples_by_task[names[k]][i]) for k, i in zip(tasks.tolist(), rows.tolist())
    ]


def kshot(examples: list[TextExample], k: int, seed: int) -> list[TextExample]:
    """`k` examples drawn without replacement, fixed by `seed` (same k and seed, same subset).

    The subset is the first k of a seeded permutation, in that permutation's order.
    """
    if not 1 <= k <= len(examples):
        raise BmtptError(
            f"k-shot needs 1 <= k <= {len(examples)} (the examples available), got k={k}; "
            "choose a smaller k or a larger split"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(examples), generator=generator)[:k]
    return [examples[i] for i in order.tolist()]


def kshot_per_class(examples: list[TextExample], k: int, seed: int) -> list[TextExample]:
    """`k` examples of every label, fixed by `seed`: the first k of each label in one seeded
    permutation of the split, kept in that permutation's order (so the classes are interleaved)."""
    if any(example.label is None for example in examples):
        raise BmtptError("per-class k-shot sampling needs a classification task (labelled examples): use --shot-sampling task")
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    taken: dict[int, int] = {}
    subset = []
    for i in order:
        label = examples[i].label
        if taken.get(label, 0) < k:
            taken[label] = taken.get(label, 0) + 1
            subset.append(examples[i])
    short = sorted(label for label in {e.label for e in examples} if taken.get(label, 0) < k)
    if short:
        raise BmtptError(f"k-shot per class needs {k} examples of every label; label(s) {short} have fewer: choose a smaller k")
    return subset


class EpochBatches:
    """Batches of one task's few examples without replacement: each epoch is a fresh permutation
    (drawn from the run's generator), cut into batches of min(batch_size, n).

    Used by the few-shot probe, where drawing 32 slots with replacement from 4 examples would repeat
    some and miss others within a step.
    """

    def __init__(self, task: str, examples: list[TextExample], batch_size: int):
        if not examples:
            raise BmtptError(f"task {task} has no examples to train on; check its data split")
        self.task, self.examples = task, examples
        self.size = min(batch_size, len(examples))
        self._order: list[int] = []

    def __call__(self, generator: torch.Generator) -> Batch:
        if len(self._order) < self.size:
            self._order += torch.randperm(len(self.examples), generator=generator).tolist()
        picks, self._order = self._order[: self.size], self._order[self.size :]
        return [(self.task, self.examples[i]) for i in picks]


def _check_tasks(examples_by_task: dict[str, list[TextExample]]) -> None:
    if not examples_by_task:
        raise BmtptError("no tasks to draw a batch from; give at least one task")
    empty = [name for name, examples in examples_by_task.items() if not examples]
    if empty:
        raise BmtptError(f"task(s) with no examples: {', '.join(empty)}; check their data splits")
