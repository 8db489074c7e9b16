"""How many CPU threads PyTorch uses (`--threads`), set once at the start of every command.

The default is measured, not PyTorch's (one thread per core): on a busy 2-core machine the demo chain
(`source`, `adapt`, `evaluate` on the toy model) took 65 and 201 s with one thread, 932 and 1267 s with
two, since the tiny and toy models' matrices (width 64, 128 and 192) are too small to split and every extra thread
waits for a core (README, "Threads"). So: `OMP_NUM_THREADS` when set (the user's or the scheduler's choice),
else 1 for the built-in small models (`tiny`, `toy`, `toy-wide`, `toy3`), else min(CPUs this process may use, 4).
"""

from __future__ import annotations

import os

SMALL_MODELS = ("tiny", "toy", "toy-wide", "toy3")
"""Models too small for intra-op threads to pay (runner.model's TINY_MODEL and TOY_MODELS)."""
MAX_DEFAULT_THREADS = 4
"""The most threads the default takes for a real T5 (beyond 4, a CPU step gains little and a shared machine suffers)."""


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a job scheduler's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(model: str) -> int:
    """The thread count when --threads is not given: OMP_NUM_THREADS if set to a positive number, else 1
    for the built-in small models, else min(available CPUs, 4)."""
    variable = os.environ.get("OMP_NUM_THREADS", "").strip()
    if variable.isdigit() and int(variable) > 0:
        return int(variable)
    if model in SMALL_MODELS:
        return 1
    return min(available_cpus(), MAX_DEFAULT_THREADS)


def apply_threads(threads: int | None, model: str) -> int:
    """Set PyTorch's intra-op threads (and inter-op threads, where this process has not started any
    parallel work yet) to `threads`, or the default for `model`; returns the count set."""
    import torch

    count = threads or default_threads(model)
    torch.set_num_threads(count)
    try:
        torch.set_num_interop_threads(count)
    except RuntimeError:  # already set, or inter-op work has started (a second command in one process)
        pass
    return count
