"""Task-embedding similarity of two soft prompts (SPEC §5c; SPoT, Vu et al. 2022).

A task's embedding is its trained prompt e ∈ R^{l×d}. Two measures:

- `mean`: cosine of average tokens, cos(mean_i e¹_i, mean_j e²_j);
- `tokens`: per-token average cosine, (1/(l₁ l₂)) Σ_i Σ_j cos(e¹_i, e²_j).

Both are symmetric; `mean` is 1 for a prompt against itself, `tokens` is 1 only when all of a
prompt's tokens point the same way (it is the mean of the full token-pair cosine matrix).
"""

from __future__ import annotations

from typing import Literal

import torch

Measure = Literal["mean", "tokens"]
MEASURES: tuple[Measure, ...] = ("mean", "tokens")


def mean_token_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """cos(mean_i e¹_i, mean_j e²_j) for prompts `(l₁, d)` and `(l₂, d)`, in float64."""
    a, b = first.double().mean(dim=0), second.double().mean(dim=0)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def token_pair_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """(1/(l₁ l₂)) Σ_i Σ_j cos(e¹_i, e²_j) for prompts `(l₁, d)` and `(l₂, d)`, in float64."""
    a = torch.nn.functional.normalize(first.double(), dim=1)  # (l₁, d)
    b = torch.nn.functional.normalize(second.double(), dim=1)  # (l₂, d)
    return float((a @ b.T).mean())


def task_similarity(first: torch.Tensor, second: torch.Tensor, measure: Measure) -> float:
    """The similarity of two task embeddings by `measure` (`mean` or `tokens`, SPEC §5c)."""
    if measure == "mean":
        return mean_token_cosine(first, second)
    if measure == "tokens":
        return token_pair_cosine(first, second)
    raise ValueError(f"unknown similarity measure {measure!r}: use one of {', '.join(MEASURES)}")


def similarity_matrix(prompts: dict[str, torch.Tensor], measure: Measure) -> torch.Tensor:
    """The `(n, n)` float64 matrix of `task_similarity` over `prompts` (in their order); symmetric."""
    names = list(prompts)
    matrix = torch.empty(len(names), len(names), dtype=torch.float64)
    for i, first in enumerate(names):
        for j in range(i, len(names)):
            matrix[i, j] = matrix[j, i] = task_similarity(prompts[first], prompts[names[j]], measure)
    return matrix
