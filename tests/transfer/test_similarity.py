"""Task-embedding and prompt similarity (SPEC §5c) against brute-force loops over tokens, in float64."""

from __future__ import annotations

import math

import pytest
import torch

from bmtpt_cli.scoring.similarity import ALIGNED_MEASURES, ALL_MEASURES, MEASURES, similarity_matrix, task_similarity


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
    if measure == "tokens":
        return sum(_cos(u, v) for u in e1 for v in e2) / (len(e1) * len(e2))
    if len(e1) != len(e2):
        return math.nan  # the aligned measures compare token i with token i
    flat1, flat2 = [x for token in e1 for x in token], [x for token in e2 for x in token]
    if measure == "cosine":
        return _cos(flat1, flat2)
    if measure == "euclidean":
        return 1 / (1 + math.sqrt(sum((a - b) ** 2 for a, b in zip(flat1, flat2))))
    distances = [math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v))) for u, v in zip(e1, e2)]
    return sum(1 / (1 + d) for d in distances) / len(distances)  # euclidean_tokens


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


@pytest.mark.parametrize("measure", ALL_MEASURES)
def test_matrix_matches_a_double_loop_over_task_pairs(prompts, measure):
    matrix = similarity_matrix(prompts, measure)
    names = list(prompts)
    assert matrix.shape == (4, 4) and matrix.dtype == torch.float64
    for i, first in enumerate(names):
        for j, second in enumerate(names):
            expected = brute_force(prompts[first], prompts[second], measure)
            if math.isnan(expected):
                assert math.isnan(matrix[i, j].item()) and measure in ALIGNED_MEASURES and "c" in (first, second)
            else:
                assert matrix[i, j].item() == pytest.approx(expected, abs=1e-12, rel=1e-12)
    assert torch.equal(matrix.nan_to_num(), matrix.T.nan_to_num())


@pytest.mark.parametrize("measure", ALIGNED_MEASURES)
def test_prompt_measures_are_one_for_a_prompt_against_itself_and_fall_with_distance(prompts, measure):
    assert task_similarity(prompts["a"], prompts["a"], measure) == pytest.approx(1.0, abs=1e-12)
    assert task_similarity(prompts["a"], prompts["b"], measure) > task_similarity(prompts["a"], prompts["d"], measure)
    assert math.isnan(task_similarity(prompts["a"], prompts["c"], measure))  # 5 tokens against 7: undefined


def test_euclidean_measures_on_hand_made_prompts():
    first = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    second = torch.tensor([[3.0, 4.0], [1.0, 1.0]])  # token 0 five apart, token 1 equal
    assert task_similarity(first, second, "euclidean") == pytest.approx(1 / 6, abs=1e-15)  # ‖P1 − P2‖ = 5
    assert task_similarity(first, second, "euclidean_tokens") == pytest.approx((1 / 6 + 1) / 2, abs=1e-15)
    assert task_similarity(first, second, "cosine") == pytest.approx(2 / (math.sqrt(2) * math.sqrt(27)), abs=1e-15)


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
    with pytest.raises(ValueError, match="mean, tokens, euclidean, euclidean_tokens, cosine"):
        task_similarity(torch.ones(2, 2), torch.ones(2, 2), "median")
    assert MEASURES == ("mean", "tokens")  # what retrieval ranks by: both defined for any two lengths
