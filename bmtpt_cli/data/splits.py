"""The baselines' split protocol (ATTEMPT/MPT after Mahabadi et al. 2021; SPEC §4, §7).

- S (small, < 10k train): full train; the official validation set, shuffled with seed 42, split in
  half: the first ⌊n/2⌋ rows dev, the rest test.
- L (large): the first 1,000 shuffled training examples become dev, the rest train; the official
  validation set (or the task's named test split) is test.
- O (own): each protocol split maps to one named official split (MNLI, PAWS, ANLI, …).

"Shuffled" is exactly the baselines' permutation, `torch.randperm(n,
generator=torch.Generator().manual_seed(42))` (ATTEMPT/MPT `shuffled_indices`), and the halves keep
that permutation's order (their `dataset.select(indices)`), so dev and test hold the same examples,
in the same order, as the baselines'. The permutation comes from a CPU generator, so it does not
depend on the machine or on an accelerator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

SPLIT_SEED = 42
LARGE_DEV_SIZE = 1000


@dataclass(frozen=True)
class SplitRule:
    """How a task's train / validation / test come from its official splits."""

    kind: str  # "S", "L" or "O"
    official: dict[str, str] = field(default_factory=dict)  # O: protocol split -> official split(s), "+"-joined
    test_split: str = "validation"  # L: the official split used as test

    def describe(self) -> str:
        """A short human-readable form for `bmtpt tasks`."""
        if self.kind == "S":
            return "S"
        if self.kind == "L":
            return "L" if self.test_split == "validation" else f"L, test={self.test_split}"
        renamed = [f"{k}={v}" for k, v in self.official.items() if k != v]
        return "O: " + ", ".join(renamed) if renamed else "O: the official train/validation/test"


SMALL = SplitRule("S")
LARGE = SplitRule("L")


def shuffled(records: list, seed: int = SPLIT_SEED) -> list:
    """The records in the baselines' seeded order: `torch.randperm(n)` from a generator seeded with `seed`."""
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed))
    return [records[i] for i in order.tolist()]


def protocol_split(rule: SplitRule, split: str, load_official: Callable[[str], list[dict]]) -> list[dict]:
    """Records of protocol `split` ("train", "validation", "test") built from official splits."""
    if rule.kind == "S":
        if split == "train":
            return load_official("train")
        validation = shuffled(load_official("validation"))
        half = len(validation) // 2
        return validation[:half] if split == "validation" else validation[half:]
    if rule.kind == "L":
        if split == "test":
            return load_official(rule.test_split)
        train = shuffled(load_official("train"))
        return train[:LARGE_DEV_SIZE] if split == "validation" else train[LARGE_DEV_SIZE:]
    return [record for name in rule.official[split].split("+") for record in load_official(name)]
