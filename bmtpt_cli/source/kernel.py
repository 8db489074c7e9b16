"""RBF kernel and (damped) SVGD update direction as pure tensor functions.

Implements SPEC §2 ("Source posterior learning"):

* Stein Variational Gradient Descent (Liu & Wang, 2016, "Stein Variational
  Gradient Descent: A General Purpose Bayesian Inference Algorithm") with the
  RBF kernel ``k_ij = exp(-||θ_i − θ_j||² / h)`` and the median heuristic
  ``h = median{D²_ij : i ≠ j} / log(M + 1)`` of their reference code;
* Damped SVGD (Ba et al., 2022, "Understanding the Variance Collapse of SVGD
  in High Dimensions"), which scales the self term of the driving force by
  ``λ`` and so subtracts ``((1 − λ)/M) s_i`` from particle i's direction.

There is no model in here: every function takes the particle matrix (and the
scores ``s_j = ∇_θ log p(θ_j | ·)``) and returns tensors in the same dtype and
on the same device as its inputs — nothing is cast to float32. Particles may
have more than two dims (e.g. soft prompts ``(M, l, d)``); they are flattened
to ``(M, D)`` with ``D = l·d`` for the kernel, exactly as SPEC §2 prescribes.

The functions are autograd-transparent (they neither detach nor enter
``torch.no_grad``) except for the median bandwidth, which is computed on the
host and so is a constant to autograd, as SVGD treats it; a trainer that only
wants the direction should call them under ``torch.no_grad()`` or pass
detached tensors.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    "damping_lambda",
    "median_bandwidth",
    "pairwise_sq_dists",
    "particle_kernel",
    "rbf_kernel",
    "svgd_direction",
]

Bandwidth = Union[float, Tensor, None]


def _flatten_particles(particles: Tensor, name: str = "particles") -> Tensor:
    """Return ``particles`` as an ``(M, D)`` view/copy; ``(M, ...)`` accepted."""
    if not isinstance(particles, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(particles).__name__}")
    if particles.dim() < 2:
        raise ValueError(
            f"{name} must have shape (M, D) or (M, ...) with at least 2 dims, "
            f"got shape {tuple(particles.shape)}"
        )
    if particles.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one particle, got shape {tuple(particles.shape)}")
    if not particles.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {particles.dtype}")
    return particles.reshape(particles.shape[0], -1)  # (M, D)


def pairwise_sq_dists(particles: Tensor) -> Tensor:
    """Squared Euclidean distances ``D²_ij = ||θ_i − θ_j||²`` (SPEC §2).

    ``particles`` is ``(M, D)`` (or ``(M, ...)``, flattened). Returns the
    ``(M, M)`` matrix, with exact zeros on the diagonal. The
    distances are computed from the coordinate differences (``torch.cdist``
    without the matrix-multiply shortcut), so there is no catastrophic
    cancellation of ``||a||² + ||b||² − 2 a·b`` when particles are close.
    """
    theta = _flatten_particles(particles)  # (M, D)
    dist = torch.cdist(
        theta.unsqueeze(0), theta.unsqueeze(0), p=2.0, compute_mode="donot_use_mm_for_euclid_dist"
    ).squeeze(0)  # (M, M)
    return dist.square().fill_diagonal_(0.0)  # (M, M); a square is never negative


def _off_diagonal(sq_dists: Tensor) -> list[float]:
    """The ``M(M − 1)`` off-diagonal entries of an ``(M, M)`` matrix, row by row, as Python floats
    (one copy to the host)."""
    rows = sq_dists.tolist()  # (M, M) as lists: one copy
    return [value for i, row in enumerate(rows) for j, value in enumerate(row) if i != j]


def _median_heuristic(off_diagonal: list[float], m: int) -> float:
    """``median / log(M + 1)`` of the off-diagonal squared distances, or 1.0 where the median is 0
    (see :func:`median_bandwidth`); a median that is not finite raises ``ValueError``."""
    if m < 2:
        return 1.0
    values = sorted(off_diagonal)
    n = len(values)  # M(M − 1): always even
    h = 0.5 * (values[n // 2 - 1] + values[n // 2]) / math.log(m + 1)
    if not math.isfinite(h):  # a bandwidth of 1 would silently switch the repulsion off
        raise ValueError(
            f"the median squared particle distance is {h * math.log(m + 1)}: the particles are not finite or "
            "too far apart for their dtype (particle_kernel computes such distances in float64)"
        )
    return h if h > 0 else 1.0


def _mean_distance(off_diagonal: list[float]) -> float:
    """Mean of the square roots of the off-diagonal squared distances (each pair counted twice,
    which leaves the mean over pairs ``i < j`` unchanged); 0.0 without pairs."""
    if not off_diagonal:
        return 0.0
    return math.fsum(map(math.sqrt, off_diagonal)) / len(off_diagonal)


def median_bandwidth(sq_dists: Tensor) -> Tensor:
    """Median-heuristic bandwidth ``h = median{D²_ij : i ≠ j} / log(M + 1)``.

    SPEC §2, following Liu & Wang (2016)'s reference code (with the median
    taken over the squared distances; no extra square as printed in the
    paper's appendix). The median is the true median of the ``M(M − 1)``
    off-diagonal entries of the ``(M, M)`` matrix ``sq_dists``; for an even
    count it is the mean of the two middle values, i.e. the semantics of
    ``torch.quantile(x, 0.5)`` (linear interpolation).

    Fallbacks, so nothing ever divides by zero: for ``M = 1`` (no pairs; the
    kernel is ``k = 1`` and the repulsion vanishes anyway) and whenever the
    median is 0 (e.g. all particles coincide), ``h = 1.0`` is returned. A
    median that is not finite (squared distances that overflowed the dtype,
    or particles that are not finite) raises ``ValueError``: a bandwidth of 1
    there would switch the repulsion off without a word. The result is a
    0-dim tensor in the dtype/device of ``sq_dists``.
    """
    if sq_dists.dim() != 2 or sq_dists.shape[0] != sq_dists.shape[1]:
        raise ValueError(f"sq_dists must be a square (M, M) matrix, got shape {tuple(sq_dists.shape)}")
    h = _median_heuristic(_off_diagonal(sq_dists), sq_dists.shape[0])
    return torch.tensor(h, dtype=sq_dists.dtype, device=sq_dists.device)  # ()


def _bandwidth_value(bandwidth: Union[float, Tensor]) -> float:
    """Validate a user-supplied bandwidth (a positive float or scalar tensor) and return it as a float."""
    if isinstance(bandwidth, Tensor):
        if bandwidth.numel() != 1:
            raise ValueError(f"bandwidth must be a scalar, got shape {tuple(bandwidth.shape)}")
    value = float(bandwidth)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"bandwidth must be finite and > 0, got {value}")
    return value


def _as_bandwidth(bandwidth: Union[float, Tensor], like: Tensor) -> Tensor:
    """Validate a user-supplied bandwidth and return it as a 0-dim tensor like ``like``."""
    return torch.tensor(_bandwidth_value(bandwidth), dtype=like.dtype, device=like.device)


def _kernel_matrix(sq_dists: Tensor, h: Union[float, Tensor]) -> Tensor:
    """``k_ij = exp(−D²_ij / h)`` from the squared distances ``(M, M)``."""
    return torch.exp(sq_dists / -h)  # (M, M)


class ParticleKernel(NamedTuple):
    """What one SVGD step needs of its particles' geometry (:func:`particle_kernel`)."""

    matrix: Tensor  # (M, M) k_ij = exp(−D²_ij / h)
    bandwidth: float  # h
    mean_distance: float  # mean ||θ_i − θ_j|| over pairs i < j (0.0 for M = 1)


def particle_kernel(particles: Tensor, *, bandwidth: Bandwidth = None) -> ParticleKernel:
    """The RBF kernel of :func:`rbf_kernel`, its bandwidth and the particles' mean pairwise distance, from
    one distance matrix and one host copy of its off-diagonal (SPEC §2) — a step's kernel, h and
    spread for the price of one ``cdist``; ``bandwidth`` overrides the median heuristic.

    Squared distances beyond the dtype's range (float32: distances over ~1.8e19) are computed again
    in float64, so h and the spread stay the true ones (the kernel is returned in the particles'
    dtype); particles that are not finite, or too far apart even for float64, raise ``ValueError``.
    """
    theta = _flatten_particles(particles)  # (M, D)
    sq = pairwise_sq_dists(theta)  # (M, M)
    off = _off_diagonal(sq)  # M(M − 1) floats
    if not math.isfinite(sum(off)) and theta.dtype != torch.float64:  # overflowed (or not finite): once more in float64
        sq = pairwise_sq_dists(theta.double())  # (M, M) float64
        off = _off_diagonal(sq)
    if not math.isfinite(sum(off)):
        raise ValueError("particles must be finite, with squared distances within float64's range")
    h = _median_heuristic(off, theta.shape[0]) if bandwidth is None else _bandwidth_value(bandwidth)
    return ParticleKernel(_kernel_matrix(sq, h).to(theta.dtype), h, _mean_distance(off))


def rbf_kernel(particles: Tensor, *, bandwidth: Bandwidth = None, sq_dists: Tensor | None = None) -> Tuple[Tensor, Tensor]:
    """RBF kernel matrix ``k_ij = exp(−D²_ij / h)`` and its bandwidth (SPEC §2).

    ``particles`` is ``(M, D)`` (or ``(M, ...)``, flattened). Returns
    ``(K, h)`` with ``K`` of shape ``(M, M)`` (symmetric, ones on the
    diagonal) and ``h`` a 0-dim tensor: the median heuristic of
    :func:`median_bandwidth` (Liu & Wang 2016), unless ``bandwidth`` (a
    positive float or scalar tensor) overrides it. ``sq_dists``: the particles'
    :func:`pairwise_sq_dists`, when the caller has computed them already.
    """
    theta = _flatten_particles(particles)  # (M, D)
    sq = pairwise_sq_dists(theta) if sq_dists is None else sq_dists  # (M, M)
    h = median_bandwidth(sq) if bandwidth is None else _as_bandwidth(bandwidth, theta)  # ()
    return _kernel_matrix(sq, h), h  # (M, M), ()


def svgd_direction(
    particles: Tensor,
    scores: Tensor,
    *,
    damping: float = 1.0,
    bandwidth: Bandwidth = None,
    kernel: Tensor | None = None,
) -> Tensor:
    """(Damped) SVGD direction φ for every particle (SPEC §2).

    Liu & Wang (2016): ``φ(θ_i) = (1/M) Σ_j [k_ji s_j + ∇_{θ_j} k(θ_j, θ_i)]``
    with ``Σ_j ∇_{θ_j} k(θ_j, θ_i) = (2/h) Σ_j k_ij (θ_i − θ_j)``; in matrix
    form ``Φ = (1/M) [K S + (2/h)(diag(K 1) − K) Θ]``. Damped SVGD (Ba et al.
    2022) scales the self term ``k_ii s_i = s_i`` by ``λ = damping``:
    ``φ_damped(θ_i) = φ(θ_i) − ((1 − λ)/M) s_i``; ``λ = 1`` is plain SVGD.

    ``particles`` and ``scores`` have the same shape ``(M, D)`` or
    ``(M, ...)`` (e.g. ``(M, l, d)``; flattened internally) and dtype; the
    returned φ has that shape and dtype. Ascent direction: the update is
    ``θ_i ← θ_i + α φ_damped(θ_i)``. With ``M = 1`` φ equals the score.

    ``kernel``: the ``(M, M)`` matrix ``rbf_kernel`` already built for these
    particles with this ``bandwidth`` (then ``bandwidth`` must be that h), so a
    caller that needs h anyway builds the kernel once per step.

    Raises ``ValueError`` on mismatched shapes/dtypes or ``damping ∉ (0, 1]``.
    """
    if not isinstance(scores, Tensor):
        raise ValueError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if not isinstance(particles, Tensor):
        raise ValueError(f"particles must be a torch.Tensor, got {type(particles).__name__}")
    if particles.shape != scores.shape:
        raise ValueError(
            f"particles and scores must have the same shape, got particles {tuple(particles.shape)} "
            f"and scores {tuple(scores.shape)}"
        )
    if particles.dtype != scores.dtype:
        raise ValueError(
            f"particles and scores must have the same dtype, got {particles.dtype} and {scores.dtype}"
        )
    if isinstance(damping, bool):
        raise ValueError(f"damping must be a float in (0, 1], got {damping!r}")
    try:
        damping = float(damping)
    except (TypeError, ValueError):
        raise ValueError(f"damping must be a float in (0, 1], got {damping!r}") from None
    if not (0.0 < damping <= 1.0):  # also rejects NaN
        raise ValueError(f"damping must be in (0, 1], got {damping}")

    shape = particles.shape
    theta = _flatten_particles(particles)  # (M, D)
    s = _flatten_particles(scores, "scores")  # (M, D)
    m = theta.shape[0]

    if kernel is None:
        k, h = rbf_kernel(theta, bandwidth=bandwidth)  # (M, M), ()
        h = float(h)
    else:
        if bandwidth is None or kernel.shape != (m, m):
            raise ValueError(f"a precomputed kernel needs its bandwidth and shape ({m}, {m}), got {tuple(kernel.shape)}")
        k, h = kernel.to(theta.dtype), _bandwidth_value(bandwidth)
    # (diag(K1) − K) Θ is invariant to translating all particles; centring first
    # avoids cancellation when the particles are close relative to their norm.
    centred = theta - theta.mean(dim=0, keepdim=True)  # (M, D)
    repulse = torch.addmm(k.sum(dim=1, keepdim=True) * centred, k, centred, alpha=-1.0)  # (M, D) (diag(K1) − K) Θ
    phi = torch.addmm(repulse, k, s, beta=2.0 / h)  # (M, D) K S + (2/h) repulse; K symmetric, so (K S)_i = Σ_j k_ji s_j
    if damping != 1.0:
        phi = phi.sub_(s, alpha=1.0 - damping)  # the self term k_ii s_i = s_i scaled by λ
    phi = phi.div_(m)  # (M, D)
    return phi.reshape(shape)


def damping_lambda(num_particles: int, dim: int, c: float = 1.0) -> float:
    """Damping ``λ = min(1, e^{−1} (c + M / dim))`` (Ba et al. 2022; SPEC §2).

    ``c = 1`` is Ba et al.'s "fully damped" ``λ_min``, ≈ 0.368 for the paper's
    setting ``M = 5``, ``dim = l·d = 76,800`` — the value the paper reports.
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not math.isfinite(c) or c < 0:
        raise ValueError(f"c must be finite and >= 0, got {c}")
    return min(1.0, math.exp(-1.0) * (c + num_particles / dim))
