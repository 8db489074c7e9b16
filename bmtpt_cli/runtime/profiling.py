"""Named profiler ranges that cost nothing when no profiler is running."""

from __future__ import annotations

import contextlib

import torch
from torch.profiler import record_function


def phase(name: str) -> contextlib.AbstractContextManager:
    """A `torch.profiler.record_function(name)` range while a torch profiler is recording, else a no-op.

    An unconditional `record_function` enters a profiler op even when nothing records it: about
    0.6 ms (2%) of a source step at the tiny shape, measured interleaved against the same step with
    no-op ranges (six ranges, entered right after the backward pass, when the CPU's caches are cold).
    """
    if torch.autograd._profiler_enabled():
        return record_function(name)
    return contextlib.nullcontext()
