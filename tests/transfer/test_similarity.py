"""Task-embedding similarity (SPEC §5c) against brute-force loops over tokens, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from bmtpt_cli.scoring.similarity import MEASURES, similarity_matrix, task_similarity


def _cos(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def brute_force(first: torch.Tensor, second: torch.Tensor, measure: str) -> float:
    """The similarity by plain Python loops over the token vectors (no torch arithmetic)."""
    e1, e2 = first.double().tolist(), second.double().tolist()
    if measure == "mean":
        mean1 = [sum(token[k] for token in e1) / len(e1) for k in range(len(e1[0]))]
        mean2 = [sum(token[k] for token in e2) / len(e2) for k in range(len(e2[0]))]
        return _cos(mean1, mean2)
    return sum(_cos(u, v) for u in e1 for v in e2) / (len(e1) * len(e2))


@pytest.fixture
def prompts():
    generator = torch.Generator().manual_seed(3)
    base = torch.randn(5, 16, generator=generator)
    return {
        "a": base,
        "b": base + 0.3 * torch.randn(5, 16, generator=generator),  # near a
        "c": torch.randn(7, 16, generator=generator),  # another length
        "d": -base,  # opposite of a
    }


@pytest.mark.parametrize("measure", MEASURES)
def test_matrix_matches_a_double_loop_over_task_pairs(prompts, measure):
    matrix = similarity_matrix(prompts, measure)
    names = list(prompts)
    assert matrix.shape == (4, 4) and matrix.dtype == torch.float64
    for i, first in enumerate(names):
        for j, second in enumerate(names):
            assert matrix[i, j].item() == pytest.approx(brute_force(prompts[first], prompts[second], measure), abs=1e-12)
    assert torch.equal(matrix, matrix.T)


def test_mean_measure_is_one_for_a_prompt_against_itself_and_minus_one_against_its_negation(prompts):
    matrix = similarity_matrix(prompts, "mean")
    assert torch.allclose(matrix.diagonal(), torch.ones(4, dtype=torch.float64), atol=1e-12)
    assert task_similarity(prompts["a"], prompts["d"], "mean") == pytest.approx(-1.0, abs=1e-12)
    assert task_similarity(prompts["a"], prompts["b"], "mean") > task_similarity(prompts["a"], prompts["c"], "mean")


def test_tokens_measure_is_one_on_the_diagonal_only_when_all_tokens_point_the_same_way():
    aligned = torch.tensor([[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]])  # every token a positive multiple of (1, 2)
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert task_similarity(aligned, aligned, "tokens") == pytest.approx(1.0, abs=1e-12)
    assert task_similarity(mixed, mixed, "tokens") == pytest.approx(0.5, abs=1e-12)  # (1 + 0 + 0 + 1) / 4


def test_an_unknown_measure_is_refused():
    with pytest.raises(ValueError, match="mean, tokens"):
        task_similarity(torch.ones(2, 2), torch.ones(2, 2), "median")
