"""Extending a run: `--resume --steps N` with N larger than the checkpoint's run length.

A finished run keeps its final checkpoint with `--keep-checkpoint`; resuming it (or an unfinished
run) with more steps continues from the checkpoint's step. `steps` is the one setting of the
fingerprint that may change, and only grow. The learning-rate schedule (linear warm-up, then linear
decay to 0 at the last step) is recomputed for the new length from the checkpoint's step on, so the
steps after it follow the N-step schedule; the first step record after the resume says so
(`steps_extended`: the step, the old and the new length, the learning rate it continues with).
"""

from __future__ import annotations

from typing import Any


def grown_steps(saved: dict[str, Any], current: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int] | None]:
    """The checkpoint's fingerprint as this run may compare it, and the growth of `steps` (None if none).

    When this run's `steps` is larger than the checkpoint's, the saved fingerprint takes the new
    value (every other setting must still match); a smaller value is left for the check to refuse.
    """
    was, now = saved.get("steps"), current.get("steps")
    if isinstance(was, int) and isinstance(now, int) and now > was:
        return {**saved, "steps": now}, {"was": was, "now": now}
    return saved, None


def reapply_schedule(optimizer, scheduler) -> list[float]:
    """Set the optimizer's learning rates from this run's schedule at the restored step (a restored
    LambdaLR keeps the checkpoint's rates, computed for the old length); returns them."""
    factors = getattr(scheduler, "lr_lambdas", None)
    if factors is None:  # not a LambdaLR: nothing to recompute
        return [group["lr"] for group in optimizer.param_groups]
    for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, factors):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    return list(scheduler._last_lr)
