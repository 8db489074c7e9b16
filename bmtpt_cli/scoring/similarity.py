"""Similarity of two soft prompts (SPEC §5c; SPoT, Vu et al. 2022; Su et al. 2022).

A task's embedding is its trained prompt e ∈ R^{l×d}. Task-embedding measures (any two lengths;
`MEASURES`, also what `adapt --init retrieve:DIR` ranks by):

- `mean`: cosine of average tokens, cos(mean_i e¹_i, mean_j e²_j);
- `tokens`: per-token average cosine, (1/(l₁ l₂)) Σ_i Σ_j cos(e¹_i, e²_j).

Prompt measures of Su et al. (two prompts of one length l; NaN for two lengths, `ALIGNED_MEASURES`):

- `euclidean`: 1 / (1 + ‖vec(e¹) − vec(e²)‖) of the flattened prompts;
- `euclidean_tokens`: (1/l) Σ_i 1 / (1 + ‖e¹_i − e²_i‖), token i against token i;
- `cosine`: cos(vec(e¹), vec(e²)) of the flattened prompts.

All are symmetric. `mean`, `euclidean`, `euclidean_tokens` and `cosine` are 1 for a prompt against
itself; `tokens` is 1 only when all of a prompt's tokens point the same way (it is the mean of the full
token-pair cosine matrix). Everything is computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

Measure = Literal["mean", "tokens", "euclidean", "euclidean_tokens", "cosine"]
MEASURES: tuple[Measure, ...] = ("mean", "tokens")
"""Task-embedding measures: defined for prompts of any two lengths."""
ALIGNED_MEASURES: tuple[Measure, ...] = ("euclidean", "euclidean_tokens", "cosine")
"""Prompt measures that compare token i with token i: defined for prompts of one length only (else NaN)."""
ALL_MEASURES: tuple[Measure, ...] = MEASURES + ALIGNED_MEASURES


def mean_token_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """cos(mean_i e¹_i, mean_j e²_j) for prompts `(l₁, d)` and `(l₂, d)`, in float64."""
    a, b = first.double().mean(dim=0), second.double().mean(dim=0)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def token_pair_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """(1/(l₁ l₂)) Σ_i Σ_j cos(e¹_i, e²_j) for prompts `(l₁, d)` and `(l₂, d)`, in float64."""
    a = torch.nn.functional.normalize(first.double(), dim=1)  # (l₁, d)
    b = torch.nn.functional.normalize(second.double(), dim=1)  # (l₂, d)
    return float((a @ b.T).mean())


def flat_euclidean_similarity(first: torch.Tensor, second: torch.Tensor) -> float:
    """1 / (1 + ‖vec(e¹) − vec(e²)‖₂) for prompts `(l, d)` of one length, in float64 (NaN for two lengths)."""
    if first.shape != second.shape:
        return math.nan
    return 1.0 / (1.0 + float(torch.linalg.vector_norm(first.double() - second.double())))


def token_euclidean_similarity(first: torch.Tensor, second: torch.Tensor) -> float:
    """(1/l) Σ_i 1 / (1 + ‖e¹_i − e²_i‖₂), token i against token i, for prompts `(l, d)` of one length,
    in float64 (NaN for two lengths)."""
    if first.shape != second.shape:
        return math.nan
    distances = torch.linalg.vector_norm(first.double() - second.double(), dim=1)  # (l,)
    return float((1.0 / (1.0 + distances)).mean())


def flat_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """cos(vec(e¹), vec(e²)) of the flattened prompts `(l, d)` of one length, in float64 (NaN for two lengths)."""
    if first.shape != second.shape:
        return math.nan
    return float(torch.nn.functional.cosine_similarity(first.double().flatten(), second.double().flatten(), dim=0))


SIMILARITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "mean": mean_token_cosine,
    "tokens": token_pair_cosine,
    "euclidean": flat_euclidean_similarity,
    "euclidean_tokens": token_euclidean_similarity,
    "cosine": flat_cosine,
}
assert tuple(SIMILARITIES) == ALL_MEASURES


def task_similarity(first: torch.Tensor, second: torch.Tensor, measure: Measure) -> float:
    """The similarity of two prompts by `measure` (one of `ALL_MEASURES`, SPEC §5c)."""
    if measure not in SIMILARITIES:
        raise ValueError(f"unknown similarity measure {measure!r}: use one of {', '.join(ALL_MEASURES)}")
    return SIMILARITIES[measure](first, second)


def similarity_matrix(prompts: dict[str, torch.Tensor], measure: Measure) -> torch.Tensor:
    """The `(n, n)` float64 matrix of `task_similarity` over `prompts` (in their order); symmetric."""
    names = list(prompts)
    matrix = torch.empty(len(names), len(names), dtype=torch.float64)
    for i, first in enumerate(names):
        for j in range(i, len(names)):
            matrix[i, j] = matrix[j, i] = task_similarity(prompts[first], prompts[names[j]], measure)
    return matrix
