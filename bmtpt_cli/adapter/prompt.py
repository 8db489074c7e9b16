"""The target prompt θ_k = W ⊙ (a_k b_kᵀ) and the Gaussian prior term (SPEC §3, paper Eq. 1–6).

A prompt module is what the adaptation loop trains and scoring reads; `TargetPrompts` is the one
every method of the prompt-tuning family uses. A module provides (`PromptModule`):

- `forward(task_ids, sources)`: the prompts `(B, l, d)` of a batch, example b of task `task_ids[b]`
  with input text `sources[b]` (a fixed prompt ignores the text; an input-dependent one reads it);
- `scorer(k)`: what scoring takes for task k: a fixed prompt `(l, d)`, or a function of a chunk's
  input texts giving their prompts `(B, l, d)` (`scoring.score.PromptFn`);
- `prior_term(task_ids, centre, sigma)`, `parameter_groups(lr_shared, lr_scales)`, `trained()`
  (the tensors the divergence guard watches, by name), `artifact_tensors()` (W, each task's (a, b)
  and the module's own tensors, as a prompts file stores them), `length`, `fixed` (whether the
  prompts are the same for every input) and, optionally, `copies` (how many prompts each example runs
  under in training: an ensemble's M members; `forward` then returns `(copies·B, l, d)`, copy-major;
  a module without it has 1, `copies_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, Union

import torch
from torch import nn

Scorer = Union[torch.Tensor, Callable[[Sequence[str]], torch.Tensor]]
"""A prompt as scoring takes it: `(l, d)` for every example, or a function of input texts → `(B, l, d)`."""


class PromptModule(Protocol):
    """The interface the adaptation loop, batched cells and scoring use (see the module docstring)."""

    length: int
    fixed: bool

    def __call__(self, task_ids: list[int], sources: Sequence[str] | None = None) -> torch.Tensor: ...
    def scorer(self, task_index: int) -> Scorer: ...
    def prior_term(self, task_ids: list[int], centre: torch.Tensor, sigma: float) -> torch.Tensor: ...
    def parameter_groups(self, lr_shared: float, lr_scales: float) -> list[dict]: ...
    def trained(self) -> dict[str, list[torch.Tensor]]: ...
    def artifact_tensors(self) -> tuple[torch.Tensor, dict, dict[str, torch.Tensor]]: ...


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

    fixed = True  # one prompt per task, whatever the input
    copies = 1  # each example runs under its task's one prompt

    @property
    def length(self) -> int:
        """l, the number of prompt vectors."""
        return self.shared.shape[0]

    def compose(self, task_index: int) -> torch.Tensor:
        """θ_k = W ⊙ (a_k b_kᵀ), shape `(l, d)`."""
        return self.shared * torch.outer(self.row_scales[task_index], self.col_scales[task_index])

    def forward(self, task_ids: list[int], sources: Sequence[str] | None = None) -> torch.Tensor:
        """Per-example prompts `(B, l, d)` for a batch whose example b belongs to task `task_ids[b]`
        (`sources`, the inputs, do not change a fixed prompt)."""
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

    def scorer(self, task_index: int) -> torch.Tensor:
        """Task k's prompt for scoring: θ_k `(l, d)`, detached."""
        return self.compose(task_index).detach()

    def parameter_groups(self, lr_shared: float, lr_scales: float) -> list[dict]:
        """AdamW groups: W at `lr_shared`, every a_k and b_k at `lr_scales` (SPEC §3)."""
        return [{"params": [self.shared], "lr": lr_shared}, {"params": self.scale_parameters(), "lr": lr_scales}]

    def trained(self) -> dict[str, list[torch.Tensor]]:
        """The trained tensors by the name the divergence check reports: W, and every a_k and b_k."""
        return {"the shared prompt W": [self.shared], "the scales a, b": self.scale_parameters()}

    def artifact_tensors(self) -> tuple[torch.Tensor, dict, dict[str, torch.Tensor]]:
        """What a prompts file stores: W, each task's (a_k, b_k), no other tensor."""
        return self.shared.detach().cpu(), self.export(), {}

    def scale_parameters(self) -> list[nn.Parameter]:
        """All a_k and b_k (trained with their own learning rate)."""
        return [*self.row_scales, *self.col_scales]

    def export(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each task's (a_k, b_k), detached on the CPU."""
        return {
            task: (self.row_scales[k].detach().cpu().clone(), self.col_scales[k].detach().cpu().clone())
            for k, task in enumerate(self.tasks)
        }


def copies_of(module: PromptModule) -> int:
    """How many prompts each example runs under in a training step: an ensemble's members, else 1."""
    return getattr(module, "copies", 1)


def prior_penalty(prompt: torch.Tensor, prior_mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """(1/2σ²)‖θ − θ̄^S‖² for one prompt `(l, d)` (paper Eq. 6); its gradient is (θ − θ̄^S)/σ²."""
    return (prompt - prior_mean).pow(2).sum() / (2.0 * sigma**2)
