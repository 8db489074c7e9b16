"""The divergence guard: after every step the trained tensors must be finite and not exploding.

SPEC §2 "Divergence guard" states the rule: a trained tensor whose RMS exceeds `GROWTH_LIMIT` × the larger
of its own initial RMS and the frozen model's embedding RMS has diverged. The check runs after the
optimizer's update and before the step is logged or checkpointed, so no checkpoint ever holds a
diverged state and the last checkpoint stays a good resume point (`--resume` with a lower learning
rate, which the fingerprint check allows: `runtime.checkpoint.LOWERABLE`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from bmtpt_cli.errors import BmtptError

GROWTH_LIMIT = 1e5
"""How many times its reference RMS a trained tensor may grow before the run is stopped (SPEC §2)."""


def rms(tensors: list[torch.Tensor], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The root mean square of all elements of `tensors` together, a 0-dim tensor of `dtype` on their
    device (inf or NaN when an element is, or when the squares overflow `dtype`)."""
    norms = torch.stack([torch.linalg.vector_norm(t.detach().to(dtype)) for t in tensors])  # (n,)
    count = sum(t.numel() for t in tensors)
    return torch.linalg.vector_norm(norms) / math.sqrt(max(count, 1))


class SizeGuard:
    """Each named group of trained tensors against `GROWTH_LIMIT` × max(its initial RMS, the
    embedding RMS); `check` raises the divergence error, one line, naming the step and the fix."""

    def __init__(self, initial: dict[str, list[torch.Tensor]], embeddings: torch.Tensor):
        embedding_rms = float(rms([embeddings]))
        self.reference = {name: max(float(rms(tensors)), embedding_rms) for name, tensors in initial.items()}
        self.limit = {name: GROWTH_LIMIT * reference for name, reference in self.reference.items()}

    def check(self, tensors: dict[str, list[torch.Tensor]], *, step: int, where: Callable[[], str]) -> None:
        """Raise `BmtptError` if a group is non-finite or over its limit; `where()`: what was kept
        and how to go on (`TrainingLoop.last_good`). One device sync for all the groups."""
        names = list(tensors)
        sizes = torch.stack([rms(tensors[name]) for name in names]).tolist()
        for name, size in zip(names, sizes):
            if size <= self.limit[name]:  # False for NaN too
                continue
            if all(bool(t.isfinite().all()) for t in tensors[name]):
                size = float(rms(tensors[name], torch.float64))  # the float32 squares may have overflowed
                why = (f"RMS {size:.3g} is over {GROWTH_LIMIT:.0e} × {self.reference[name]:.3g}, the larger of "
                       f"the initial RMS and the model's embedding RMS")
            else:
                why = "NaN or infinite values"
            raise BmtptError(f"{name} diverged at step {step} ({why}): {where()}")
