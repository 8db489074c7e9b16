"""The source step in chunks of particles and examples: bit-identical unchunked, equal to round-off chunked."""

import pytest
import torch

from bmtpt_cli.runner.runner import target_tokens
from bmtpt_cli.source.kernel import rbf_kernel, svgd_direction
from bmtpt_cli.source.svgd import source_update, start_source, svgd_step
from configs import source_config


def _reference_step(runner, particles, examples, *, damping, likelihood_scale, per_example):
    """The source step as it was before chunking (one process): one pass of all M·B sequences."""
    batch = runner.encode([e.source for e in examples], [e.target for e in examples])
    sums = runner.particle_loss_sums(particles, batch, per_example=per_example)
    (grads,) = torch.autograd.grad(sums.sum(), particles)
    count = torch.tensor(len(examples)) if per_example else target_tokens(batch)
    totals = torch.cat([sums.detach(), count.to(sums.dtype).view(1)])
    losses = totals[:-1] / totals[-1]
    grads = grads / totals[-1]
    flat = particles.detach().flatten(1)
    kernel, h = rbf_kernel(flat, bandwidth=None)
    phi = svgd_direction(flat, (-likelihood_scale * grads).flatten(1), damping=damping, bandwidth=h, kernel=kernel)
    return losses, -phi.view_as(particles)


def _examples(demo_examples):
    return demo_examples["demo_sentiment"][:2] + demo_examples["demo_nli"][:2]  # B = 4, mixed lengths


def _step(runner, start, examples, weighting):
    particles = torch.nn.Parameter(start.clone())
    losses, *_ = svgd_step(runner, particles, examples, damping=0.5, likelihood_scale=2.0, bandwidth=None,
                          loss_weighting=weighting)
    return losses, particles.grad


@pytest.mark.parametrize("weighting", ["tokens", "examples"])
def test_unchunked_step_is_bit_identical_to_the_one_pass_step(runner, demo_examples, weighting):
    examples = _examples(demo_examples)
    start = torch.randn(3, 4, runner.d_model, generator=torch.Generator().manual_seed(0))
    losses, grad = _step(runner, start, examples, weighting)
    assert runner.last_plan.passes == 1  # tiny shapes on a CPU: one pass
    ref_losses, ref_grad = _reference_step(runner, torch.nn.Parameter(start.clone()), examples, damping=0.5,
                                           likelihood_scale=2.0, per_example=weighting == "examples")
    assert torch.equal(losses, ref_losses) and torch.equal(grad, ref_grad)


@pytest.mark.parametrize("weighting", ["tokens", "examples"])
@pytest.mark.parametrize("chunk,passes", [(8, 2), (4, 3), (3, 6)])
def test_chunked_step_equals_the_one_pass_step(runner, demo_examples, monkeypatch, weighting, chunk, passes):
    examples = _examples(demo_examples)
    start = torch.randn(3, 4, runner.d_model, generator=torch.Generator().manual_seed(1))
    whole_losses, whole_grad = _step(runner, start, examples, weighting)
    monkeypatch.setattr(runner, "chunk_sequences", chunk)  # M·B = 12 sequences in passes of ≤ `chunk`
    losses, grad = _step(runner, start, examples, weighting)
    assert runner.last_plan.passes == passes
    torch.testing.assert_close(losses, whole_losses, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, whole_grad, rtol=1e-5, atol=1e-7 * whole_grad.abs().max().item())


def test_the_step_record_logs_the_plan_when_it_changes(runner, demo_examples, monkeypatch):
    examples = _examples(demo_examples)
    config = source_config(particles=3, prompt_length=4, steps=4, warmup_steps=0, seed=0)
    state, _ = start_source(runner, config)
    first = source_update(runner, state, examples, config, step=1)
    second = source_update(runner, state, examples, config, step=2)
    monkeypatch.setattr(runner, "chunk_sequences", 4)
    third = source_update(runner, state, examples, config, step=3)
    assert (first.passes, second.passes, third.passes) == (1, 1, 3)
    assert "one pass" in first.plan and second.plan is None  # unchanged: not repeated in the log
    assert third.plan.startswith("3 × 4 = 12 sequences in 3 passes of 1 × 4") and "--chunk-sequences 4" in third.plan


def test_the_step_record_reports_the_spread_of_the_particles_the_kernel_used(runner, demo_examples):
    from reference import mean_pairwise_distance

    config = source_config(particles=3, prompt_length=4, steps=10)
    state, _ = start_source(runner, config)
    before = state.particles.detach().clone()
    record = source_update(runner, state, _examples(demo_examples), config, step=1)
    # the bandwidth's particles, before the update (the kernel's float32 distances against a float64 loop)
    assert record.mean_distance == pytest.approx(mean_pairwise_distance(before), rel=1e-4)
    assert not torch.equal(before, state.particles.detach())
