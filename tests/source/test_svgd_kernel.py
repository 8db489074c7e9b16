"""Tests for bmtpt_cli.source.kernel against brute-force SPEC §2 formulas."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import pytest
import torch

from bmtpt_cli.source.kernel import damping_lambda, particle_kernel, rbf_kernel, svgd_direction
from reference import mean_pairwise_distance
from bmtpt_cli.source.kernel import median_bandwidth, pairwise_sq_dists

Matrix = List[List[float]]


# --------------------------------------------------------------------------- brute force


def _bf_sq_dists(theta: Matrix) -> Matrix:
    m = len(theta)
    return [[sum((a - b) ** 2 for a, b in zip(theta[i], theta[j])) for j in range(m)] for i in range(m)]


def _bf_median(values: List[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _bf_kernel(theta: Matrix, bandwidth: Optional[float] = None) -> Tuple[Matrix, float]:
    m = len(theta)
    d2 = _bf_sq_dists(theta)
    if bandwidth is not None:
        h = bandwidth
    elif m == 1:
        h = 1.0
    else:
        med = _bf_median([d2[i][j] for i in range(m) for j in range(m) if i != j])
        h = med / math.log(m + 1)
        if not (math.isfinite(h) and h > 0):
            h = 1.0
    return [[math.exp(-d2[i][j] / h) for j in range(m)] for i in range(m)], h


def _bf_direction(theta: Matrix, scores: Matrix, damping: float = 1.0, bandwidth: Optional[float] = None) -> Matrix:
    """phi(theta_i) = (1/M) sum_j [k_ji s_j + (2/h) k_ij (theta_i - theta_j)] - ((1-lam)/M) s_i."""
    m, d = len(theta), len(theta[0])
    k, h = _bf_kernel(theta, bandwidth)
    out = []
    for i in range(m):
        phi = [0.0] * d
        for j in range(m):
            for c in range(d):
                grad_k = (2.0 / h) * k[i][j] * (theta[i][c] - theta[j][c])  # grad_{theta_j} k(theta_j, theta_i)
                phi[c] += k[j][i] * scores[j][c] + grad_k
        phi = [p / m for p in phi]
        phi = [p - (1.0 - damping) / m * scores[i][c] for c, p in enumerate(phi)]
        out.append(phi)
    return out


def _rand(m: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(m, d, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- 1. brute-force agreement


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8])
def test_sq_dists_kernel_and_bandwidth_match_brute_force(m: int) -> None:
    d = 3 + 2 * m
    theta = _rand(m, d, seed=m, scale=3.0) + 10.0  # offset: distances small relative to norms
    d2 = pairwise_sq_dists(theta)
    bf_d2 = torch.tensor(_bf_sq_dists(theta.tolist()), dtype=torch.float64)
    assert d2.shape == (m, m)
    assert torch.all(d2.diagonal() == 0)
    torch.testing.assert_close(d2, bf_d2, rtol=1e-10, atol=0.0)

    k, h = rbf_kernel(theta)
    bf_k, bf_h = _bf_kernel(theta.tolist())
    assert h.dim() == 0
    assert float(h) == pytest.approx(bf_h, rel=1e-10)
    torch.testing.assert_close(k, torch.tensor(bf_k, dtype=torch.float64), rtol=1e-10, atol=1e-300)
    assert torch.all(k.diagonal() == 1)
    torch.testing.assert_close(median_bandwidth(d2), torch.tensor(bf_h, dtype=torch.float64), rtol=1e-10, atol=0.0)


def test_median_is_mean_of_two_middle_values() -> None:
    # M = 3 gives 6 off-diagonal entries {1, 1, 4, 4, 9, 9}: median (4 + 4)/2 = 4;
    # M = 4 on a line 0, 1, 3, 7 -> upper-triangle {1, 9, 49, 4, 36, 16}: doubled
    # sorted 1,1,4,4,9,9,16,16,36,36,49,49 -> median (9 + 16)/2 = 12.5, not 9 or 16.
    theta = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    h = median_bandwidth(pairwise_sq_dists(theta))
    assert float(h) == pytest.approx(12.5 / math.log(5), rel=1e-14)
    q = torch.quantile(pairwise_sq_dists(theta)[~torch.eye(4, dtype=torch.bool)], 0.5)
    assert float(h) == pytest.approx(float(q) / math.log(5), rel=1e-14)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("damping", [1.0, 0.37, 0.8])
@pytest.mark.parametrize("bandwidth", [None, 2.5])
def test_svgd_direction_matches_brute_force(m: int, damping: float, bandwidth: Optional[float]) -> None:
    g = torch.Generator().manual_seed(1000 + m)
    d = int(torch.randint(1, 9, (1,), generator=g))
    theta = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.5
    scores = torch.randn(m, d, generator=g, dtype=torch.float64) * 2.0
    phi = svgd_direction(theta, scores, damping=damping, bandwidth=bandwidth)
    expected = torch.tensor(_bf_direction(theta.tolist(), scores.tolist(), damping, bandwidth), dtype=torch.float64)
    torch.testing.assert_close(phi, expected, rtol=1e-10, atol=1e-12)
    if bandwidth is not None:
        _, h = rbf_kernel(theta, bandwidth=bandwidth)
        assert float(h) == bandwidth
        _, h_tensor = rbf_kernel(theta, bandwidth=torch.tensor(bandwidth))
        assert h_tensor.dtype == torch.float64 and float(h_tensor) == bandwidth


def test_fixed_bandwidth_changes_result() -> None:
    theta, scores = _rand(5, 4, seed=3), _rand(5, 4, seed=4)
    _, h_med = rbf_kernel(theta)
    assert not torch.allclose(
        svgd_direction(theta, scores), svgd_direction(theta, scores, bandwidth=float(h_med) * 7.0)
    )
    torch.testing.assert_close(
        svgd_direction(theta, scores), svgd_direction(theta, scores, bandwidth=h_med), rtol=1e-14, atol=0.0
    )


# --------------------------------------------------------------------------- 2. gradient term vs autograd


@pytest.mark.parametrize("m", [2, 4, 7])
def test_repulsive_term_matches_autograd(m: int) -> None:
    theta = _rand(m, 5, seed=20 + m)
    _, h = rbf_kernel(theta)
    h = h.detach()  # the bandwidth is held fixed
    # With zero scores, phi_i = (1/M) sum_j grad_{theta_j} k(theta_j, theta_i).
    phi = svgd_direction(theta, torch.zeros_like(theta), bandwidth=h)

    expected = torch.zeros_like(theta)
    for i in range(m):
        others = theta.clone().requires_grad_(True)  # plays the role of theta_j
        target = theta[i].detach()  # theta_i, fixed
        k_row = torch.exp(-((others - target) ** 2).sum(dim=1) / h)  # k(theta_j, theta_i) over j
        (grad,) = torch.autograd.grad(k_row.sum(), others)  # row j: grad_{theta_j} k(theta_j, theta_i)
        expected[i] = grad.sum(dim=0) / m
    assert expected.abs().max() > 1e-3  # the term is not trivially zero
    torch.testing.assert_close(phi, expected, rtol=1e-10, atol=1e-13)

    # The same through the module's own kernel (autograd through cdist, incl. the
    # zero-distance diagonal): by symmetry of k,
    # d/d theta_j sum_{i,j'} k(theta_i, theta_j') = 2 sum_i grad_{theta_j} k(theta_j, theta_i).
    others = theta.clone().requires_grad_(True)
    k_mod, _ = rbf_kernel(others, bandwidth=h)
    (g_all,) = torch.autograd.grad(k_mod.sum(), others)
    assert torch.isfinite(g_all).all()
    expected_total = torch.zeros_like(theta)
    for i in range(m):
        others_i = theta.clone().requires_grad_(True)
        k_row = torch.exp(-((others_i - theta[i]) ** 2).sum(dim=1) / h)
        (grad,) = torch.autograd.grad(k_row.sum(), others_i)
        expected_total += 2.0 * grad
    torch.testing.assert_close(g_all, expected_total, rtol=1e-10, atol=1e-13)


# --------------------------------------------------------------------------- 3. Gaussian target


def test_particles_converge_to_2d_gaussian() -> None:
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)
    prec = torch.linalg.inv(cov)
    g = torch.Generator().manual_seed(1234)
    # M = 150 particles from N(0, I): wrong mean (off by 2), variance and correlation.
    theta = torch.randn(150, 2, generator=g, dtype=torch.float64)
    assert not torch.all((theta.mean(dim=0) - mean).abs() < 0.1)
    assert not torch.all((torch.cov(theta.T) - cov).abs() < 0.25)
    # 500 plain ascent steps of size 0.3, no damping. (Typical result: mean error
    # ~0.02, covariance error ~0.15 — SVGD slightly under-estimates the variance.)
    step = 0.3
    for _ in range(500):
        scores = -(theta - mean) @ prec  # exact score of N(mean, cov); prec symmetric
        theta = theta + step * svgd_direction(theta, scores, damping=1.0)
    emp_mean = theta.mean(dim=0)
    emp_cov = torch.cov(theta.T)
    # Tolerances: mean within 0.1 per coordinate, covariance entries within 0.25.
    assert torch.all((emp_mean - mean).abs() < 0.1), emp_mean
    assert torch.all((emp_cov - cov).abs() < 0.25), emp_cov


# --------------------------------------------------------------------------- 4. damping


def test_damping_one_is_plain_svgd_and_less_subtracts_self_term() -> None:
    m = 6
    theta, scores = _rand(m, 7, seed=41), _rand(m, 7, seed=42)
    plain = svgd_direction(theta, scores)
    assert torch.equal(svgd_direction(theta, scores, damping=1.0), plain)
    for lam in (0.2, 0.368, 0.999):
        damped = svgd_direction(theta, scores, damping=lam)
        torch.testing.assert_close(plain - damped, ((1.0 - lam) / m) * scores, rtol=1e-12, atol=1e-15)
        assert not torch.equal(damped, plain)


# --------------------------------------------------------------------------- 5. M = 1


@pytest.mark.parametrize("damping", [1.0, 0.5])
def test_single_particle_is_gradient_ascent(damping: float) -> None:
    theta, scores = _rand(1, 11, seed=51, scale=4.0), _rand(1, 11, seed=52)
    k, h = rbf_kernel(theta)
    assert k.shape == (1, 1) and float(k) == 1.0 and float(h) == 1.0
    phi = svgd_direction(theta, scores, damping=damping)
    torch.testing.assert_close(phi, damping * scores, rtol=1e-15, atol=0.0)
    assert torch.equal(svgd_direction(theta, scores), scores)
    assert particle_kernel(theta).mean_distance == 0.0


# --------------------------------------------------------------------------- 6. coinciding particles


def test_identical_particles_have_finite_bandwidth_and_direction() -> None:
    theta = torch.full((4, 6), 0.3, dtype=torch.float64)
    scores = _rand(4, 6, seed=61)
    k, h = rbf_kernel(theta)
    assert torch.isfinite(h) and float(h) > 0
    assert float(h) == 1.0
    assert torch.equal(k, torch.ones(4, 4, dtype=torch.float64))
    phi = svgd_direction(theta, scores)
    assert torch.isfinite(phi).all()
    # No repulsion between coinciding particles: every particle gets the mean score.
    torch.testing.assert_close(phi, scores.mean(dim=0, keepdim=True).expand_as(scores), rtol=1e-14, atol=1e-15)
    assert particle_kernel(theta).mean_distance == 0.0


def test_partly_coinciding_particles_keep_positive_bandwidth() -> None:
    # Most pairs coincide -> median 0 -> fallback h = 1.
    theta = torch.zeros(5, 3, dtype=torch.float64)
    theta[0] = 1.0
    _, h = rbf_kernel(theta)
    assert float(h) == 1.0
    assert torch.isfinite(svgd_direction(theta, _rand(5, 3, seed=62))).all()


# --------------------------------------------------------------------------- 7. lambda, mean distance


def test_damping_lambda_values() -> None:
    assert damping_lambda(5, 100 * 768) == pytest.approx(0.3679, abs=1e-4)
    assert damping_lambda(5, 100 * 768) == pytest.approx(math.exp(-1) * (1 + 5 / 76800), rel=1e-15)
    assert damping_lambda(5, 100 * 768, c=5) == 1.0
    assert damping_lambda(10, 4) == 1.0  # e^-1 (1 + 2.5) > 1 -> clipped


@pytest.mark.parametrize("shape", [(2, 3), (5, 4), (7, 2, 3)])
def test_the_kernels_mean_pairwise_distance_matches_a_loop(shape: Tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    theta = torch.randn(*shape, generator=g, dtype=torch.float64)
    flat = theta.reshape(shape[0], -1).tolist()
    m = shape[0]
    dists = [
        math.sqrt(sum((a - b) ** 2 for a, b in zip(flat[i], flat[j]))) for i in range(m) for j in range(i + 1, m)
    ]
    result = particle_kernel(theta).mean_distance
    assert isinstance(result, float)
    assert result == pytest.approx(sum(dists) / len(dists), rel=1e-12)


def test_precomputed_squared_distances_give_the_same_kernel_and_spread() -> None:
    from bmtpt_cli.source.kernel import pairwise_sq_dists

    theta = _rand(5, 6, seed=91)
    sq = pairwise_sq_dists(theta)
    k, h = rbf_kernel(theta)
    k_pre, h_pre = rbf_kernel(theta, sq_dists=sq)
    assert torch.equal(k, k_pre) and torch.equal(h, h_pre)


# --------------------------------------------------------------------------- 8. dtype / shapes


def test_float64_in_float64_out_and_float32_stays_float32() -> None:
    theta, scores = _rand(4, 5, seed=81), _rand(4, 5, seed=82)
    k, h = rbf_kernel(theta)
    assert k.dtype == h.dtype == torch.float64
    assert svgd_direction(theta, scores, damping=0.5).dtype == torch.float64
    assert pairwise_sq_dists(theta).dtype == torch.float64
    k32, h32 = rbf_kernel(theta.float())
    assert k32.dtype == h32.dtype == torch.float32
    assert svgd_direction(theta.float(), scores.float()).dtype == torch.float32
    _, h_fixed = rbf_kernel(theta, bandwidth=torch.tensor(2.0, dtype=torch.float32))
    assert h_fixed.dtype == torch.float64


def test_three_dim_particles_round_trip() -> None:
    m, length, d = 5, 3, 4
    g = torch.Generator().manual_seed(83)
    theta = torch.randn(m, length, d, generator=g, dtype=torch.float64)
    scores = torch.randn(m, length, d, generator=g, dtype=torch.float64)
    phi = svgd_direction(theta, scores, damping=0.368)
    assert phi.shape == (m, length, d) and phi.dtype == torch.float64
    flat = svgd_direction(theta.reshape(m, -1), scores.reshape(m, -1), damping=0.368)
    torch.testing.assert_close(phi, flat.reshape(m, length, d), rtol=0.0, atol=0.0)
    k3, h3 = rbf_kernel(theta)
    k2, h2 = rbf_kernel(theta.reshape(m, -1))
    assert torch.equal(k3, k2) and torch.equal(h3, h2)


# --------------------------------------------------------------------------- 9. bad input


def test_bad_input_raises_value_error() -> None:
    theta, scores = _rand(3, 4, seed=91), _rand(3, 4, seed=92)
    with pytest.raises(ValueError, match="same shape"):
        svgd_direction(theta, scores[:, :3])
    with pytest.raises(ValueError, match="same shape"):
        svgd_direction(theta, scores[:2])
    with pytest.raises(ValueError, match="same shape"):
        svgd_direction(theta.reshape(3, 2, 2), scores)
    with pytest.raises(ValueError, match="dtype"):
        svgd_direction(theta, scores.float())
    for bad in (0.0, -0.5, 1.0000001, 2.0, float("nan")):
        with pytest.raises(ValueError, match="damping"):
            svgd_direction(theta, scores, damping=bad)
    with pytest.raises(ValueError, match="bandwidth"):
        svgd_direction(theta, scores, bandwidth=0.0)
    with pytest.raises(ValueError):
        svgd_direction(theta[0], scores[0])  # 1-D: no particle axis
    with pytest.raises(ValueError):
        damping_lambda(0, 10)


# --------------------------------------------------------------------------- 9. one step's kernel


@pytest.mark.parametrize("m", [1, 2, 5, 8])
def test_particle_kernel_is_rbf_kernel_its_bandwidth_and_the_spread(m: int) -> None:
    from bmtpt_cli.source.kernel import particle_kernel

    theta = _rand(m, 7, seed=100 + m, scale=2.0) + 5.0
    got = particle_kernel(theta)
    k, h = rbf_kernel(theta)
    bf_k, bf_h = _bf_kernel(theta.tolist())
    assert isinstance(got.bandwidth, float) and got.bandwidth == pytest.approx(bf_h, rel=1e-12) == float(h)
    torch.testing.assert_close(got.matrix, torch.tensor(bf_k, dtype=torch.float64), rtol=1e-10, atol=1e-300)
    torch.testing.assert_close(got.matrix, k, rtol=1e-14, atol=0.0)
    assert got.mean_distance == pytest.approx(mean_pairwise_distance(theta), rel=1e-6)
    fixed = particle_kernel(theta, bandwidth=2.5)
    assert fixed.bandwidth == 2.5
    torch.testing.assert_close(fixed.matrix, torch.exp(-pairwise_sq_dists(theta) / 2.5), rtol=1e-14, atol=0.0)
    for bad in (0.0, -1.0, float("nan"), torch.ones(2)):
        with pytest.raises(ValueError, match="bandwidth"):
            particle_kernel(theta, bandwidth=bad)


# --------------------------------------------------------------------------- 10. far-apart particles


def test_particle_kernel_keeps_the_true_bandwidth_when_float32_squares_overflow() -> None:
    """Issue 27 item 8: distances of ~1e25 overflow float32 squares; the kernel used to fall back to
    h = 1 (no repulsion) and report an infinite spread. Now h and the spread are float64's."""
    from bmtpt_cli.source.kernel import particle_kernel

    theta64 = _rand(4, 6, seed=7) * 1e25
    got = particle_kernel(theta64.float())
    _, bf_h = _bf_kernel(theta64.float().double().tolist())
    assert got.bandwidth == pytest.approx(bf_h, rel=1e-12) and math.isfinite(got.mean_distance)
    assert got.matrix.dtype == torch.float32 and torch.isfinite(got.matrix).all()
    for bad in (float("nan"), float("inf")):
        broken = theta64.float().clone()
        broken[1, 2] = bad
        with pytest.raises(ValueError, match="finite"):
            particle_kernel(broken)
    with pytest.raises(ValueError, match="not finite"):
        rbf_kernel(theta64.float())  # float32 squares overflowed: an error, never a silent h = 1
