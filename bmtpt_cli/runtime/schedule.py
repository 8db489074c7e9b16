"""Learning-rate schedule shared by the training loops: linear warm-up, then linear decay to 0."""

from __future__ import annotations

import torch


def linear_schedule(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int):
    """LambdaLR that rises linearly over `warmup_steps` then decays linearly to 0 at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

