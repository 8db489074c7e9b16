"""The target prompt θ_k = W ⊙ (a_k b_kᵀ) and the Gaussian prior term (SPEC §3, paper Eq. 1–6)."""

from __future__ import annotations

import torch
from torch import nn


class TargetPrompts(nn.Module):
    """One shared W `(l, d)` and, per target task k, a rank-one scale a_k `(l,)`, b_k `(d,)`.

    Each task's a and b are separate parameters so a batch without task k leaves them untouched
    (their gradient stays None and the optimizer skips them).
    """

    def __init__(self, init: torch.Tensor, tasks: list[str]):
        super().__init__()
        length, width = init.shape
        self.tasks = list(tasks)
        self.shared = nn.Parameter(init.detach().clone().float())  # W, (l, d)
        self.row_scales = nn.ParameterList([nn.Parameter(torch.ones(length)) for _ in tasks])  # a_k, (l,)
        self.col_scales = nn.ParameterList([nn.Parameter(torch.ones(width)) for _ in tasks])  # b_k, (d,)

    def compose(self, task_index: int) -> torch.Tensor:
        """θ_k = W ⊙ (a_k b_kᵀ), shape `(l, d)`."""
        return self.shared * torch.outer(self.row_scales[task_index], self.col_scales[task_index])

    def forward(self, task_ids: list[int]) -> torch.Tensor:
        """Per-example prompts `(B, l, d)` for a batch whose example b belongs to task `task_ids[b]`."""
        composed = {k: self.compose(k) for k in sorted(set(task_ids))}
        return torch.stack([composed[k] for k in task_ids])

    def prior_term(self, task_ids: list[int], prior_mean: torch.Tensor, sigma: float) -> torch.Tensor:
        """The prior term of a batch: Σ_k (n_k / B) · (1/2σ²)‖θ_k − θ̄^S‖² over the tasks present.

        A single-task batch gets exactly the paper's term for that task; tasks absent from the batch
        contribute nothing, so their a_k, b_k receive no gradient.
        """
        batch_size = len(task_ids)
        return sum(
            (task_ids.count(k) / batch_size) * prior_penalty(self.compose(k), prior_mean, sigma)
            for k in sorted(set(task_ids))
        )

    def scale_parameters(self) -> list[nn.Parameter]:
        """All a_k and b_k (trained with their own learning rate)."""
        return [*self.row_scales, *self.col_scales]

    def export(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each task's (a_k, b_k), detached on the CPU."""
        return {
            task: (self.row_scales[k].detach().cpu().clone(), self.col_scales[k].detach().cpu().clone())
            for k, task in enumerate(self.tasks)
        }


def prior_penalty(prompt: torch.Tensor, prior_mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """(1/2σ²)‖θ − θ̄^S‖² for one prompt `(l, d)` (paper Eq. 6); its gradient is (θ − θ̄^S)/σ²."""
    return (prompt - prior_mean).pow(2).sum() / (2.0 * sigma**2)
