"""Reference computations the tests check bmtpt against, kept out of the package because nothing in
bmtpt calls them (issue 21): per-particle and per-batch losses, sequence log-likelihoods, candidate
scores, and the particles' mean pairwise distance by the textbook formula."""

from __future__ import annotations

import torch

from bmtpt_cli.runner.runner import FrozenT5Runner, EncodedBatch, target_tokens


def particle_losses(runner: FrozenT5Runner, particles: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
    """Mean LM cross-entropy of each particle `(M, l, d)` on the same B examples: `(M,)`, in one pass."""
    return runner.particle_loss_sums(particles, batch) / target_tokens(batch)


def batch_loss(runner: FrozenT5Runner, prompts: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
    """Token-mean cross-entropy of B examples, each under its own prompt `(B, l, d)`."""
    return runner.batch_loss_sum(prompts, batch) / target_tokens(batch)


@torch.no_grad()
def sequence_log_likelihoods(runner: FrozenT5Runner, prompts: torch.Tensor, sources: list[str], targets: list[str]) -> torch.Tensor:
    """log p(y_n | [θ_n; x_n]) for N (prompt, source, target) triples: `(N,)`, the sum of the target's
    token log-probabilities, end-of-sequence token included (SPEC §1)."""
    batch = runner.encode(sources, targets)
    return -runner.token_losses(prompts, batch).sum(dim=1)  # (N,)


@torch.no_grad()
def score_candidates(runner: FrozenT5Runner, prompts: torch.Tensor, sources: list[str], candidates: list[str]) -> torch.Tensor:
    """Log-likelihood of every candidate for every example, `(B, C)` (rank scoring, SPEC §4)."""
    return torch.stack(runner.candidate_log_likelihoods(prompts, sources, [tuple(candidates)] * len(sources)))


def mean_pairwise_distance(particles: torch.Tensor) -> float:
    """Mean Euclidean distance ||θ_i − θ_j|| over pairs i < j, by a loop over the pairs in float64
    (0.0 for one particle)."""
    theta = particles.detach().reshape(particles.shape[0], -1).double()
    pairs = [(i, j) for i in range(len(theta)) for j in range(i + 1, len(theta))]
    if not pairs:
        return 0.0
    return float(sum(torch.linalg.vector_norm(theta[i] - theta[j]) for i, j in pairs) / len(pairs))
