"""The source training loop on the tiny model: frozen weights, the SVGD gradient, exact resume."""

import dataclasses
import os
import signal

import pytest
import torch

from bmtpt_cli.runtime.checkpoint import Interrupted
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.source import svgd_direction
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.source.svgd import resolved_damping, svgd_step, train_source
from configs import source_config
from reference import particle_losses

CONFIG = source_config(particles=3, prompt_length=4, steps=6, examples_per_task=2, warmup_steps=1, checkpoint_every=2, seed=3)


def _train(runner, examples, tmp_path, config=CONFIG, **kwargs):
    files = RunFiles(tmp_path / "run.ckpt", tmp_path / "run.log.jsonl", kwargs.pop("resume", False), config.fingerprint())
    return train_source(runner, examples, config, files=files, **kwargs)


def test_source_run_leaves_every_model_weight_bit_identical(runner, demo_examples, tmp_path):
    before = {name: tensor.clone() for name, tensor in runner.model.state_dict().items()}
    particles = _train(runner, demo_examples, tmp_path)
    assert particles.shape == (3, 4, runner.d_model) and torch.isfinite(particles).all()
    for name, tensor in runner.model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_svgd_step_hands_the_optimizer_minus_phi(runner, demo_examples):
    examples = demo_examples["demo_sentiment"][:3]
    start = torch.randn(3, 4, runner.d_model, generator=torch.Generator().manual_seed(0))
    particles = torch.nn.Parameter(start.clone())
    svgd_step(runner, particles, examples, damping=0.5, likelihood_scale=2.0, bandwidth=None)
    # Independent: per-particle gradients from three separate runs, then the SVGD direction.
    batch = runner.encode([e.source for e in examples], [e.target for e in examples])
    grads = []
    for j in range(3):
        theta = start[j : j + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(particle_losses(runner, theta, batch).sum(), theta)
        grads.append(grad[0])
    scores = -2.0 * torch.stack(grads)
    expected = -svgd_direction(start, scores, damping=0.5)
    torch.testing.assert_close(particles.grad, expected, rtol=1e-4, atol=1e-6)


def test_one_particle_is_plain_gradient_descent(runner, demo_examples):
    examples = demo_examples["demo_nli"][:2]
    particles = torch.nn.Parameter(torch.randn(1, 4, runner.d_model))
    svgd_step(runner, particles, examples, damping=1.0, likelihood_scale=1.0, bandwidth=None)
    theta = particles.detach().clone().requires_grad_(True)
    batch = runner.encode([e.source for e in examples], [e.target for e in examples])
    (grad,) = torch.autograd.grad(particle_losses(runner, theta, batch).sum(), theta)
    torch.testing.assert_close(particles.grad, grad)


def test_default_damping_is_the_fully_damped_lambda():
    config = source_config(particles=5, prompt_length=100)
    assert resolved_damping(config, 768) == pytest.approx(0.3679, abs=1e-4)
    assert resolved_damping(source_config(damping=0.9), 768) == 0.9


def test_same_seed_same_particles_other_seed_other_particles(runner, demo_examples, tmp_path):
    runs = {name: tmp_path / name for name in ("a", "b", "c")}
    for directory in runs.values():
        directory.mkdir()
    first = _train(runner, demo_examples, runs["a"])
    second = _train(runner, demo_examples, runs["b"])
    other_seed = _train(runner, demo_examples, runs["c"], config=dataclasses.replace(CONFIG, seed=4))
    assert torch.equal(first, second)
    assert not torch.equal(first, other_seed)


def test_interrupted_run_resumes_to_the_uninterrupted_result(runner, demo_examples, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "cut").mkdir()
    uninterrupted = _train(runner, demo_examples, tmp_path / "full")

    def interrupt_at_step_3(record):
        if record.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    with pytest.raises(Interrupted, match="--resume"):
        _train(runner, demo_examples, tmp_path / "cut", on_step=interrupt_at_step_3)
    assert (tmp_path / "cut" / "run.ckpt").is_file()
    log_lines = (tmp_path / "cut" / "run.log.jsonl").read_text().splitlines()
    assert len(log_lines) == 3
    resumed_from = []
    resumed = _train(runner, demo_examples, tmp_path / "cut", resume=True, on_start=resumed_from.append)
    assert resumed_from == [3]
    assert torch.equal(resumed, uninterrupted)
    assert len((tmp_path / "cut" / "run.log.jsonl").read_text().splitlines()) == CONFIG.steps


def test_resume_refuses_a_checkpoint_with_other_settings(runner, demo_examples, tmp_path):
    _train(runner, demo_examples, tmp_path)
    other = dataclasses.replace(CONFIG, lr=CONFIG.lr * 2, checkpoint_every=2)  # a lower lr is allowed (test_divergence)
    with pytest.raises(BmtptError, match="'lr'"):
        _train(runner, demo_examples, tmp_path, config=other, resume=True)


def test_a_single_particle_defaults_to_no_damping_so_it_is_plain_gradient_descent(runner, demo_examples, tmp_path):
    assert resolved_damping(source_config(particles=1), 768) == 1.0
    assert resolved_damping(source_config(particles=1, damping=0.5), 768) == 0.5  # an explicit λ still wins
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    lone = source_config(particles=1, prompt_length=4, steps=3, examples_per_task=2, warmup_steps=1, checkpoint_every=3)
    default = _train(runner, demo_examples, tmp_path / "a", config=lone)
    plain = _train(runner, demo_examples, tmp_path / "b", config=dataclasses.replace(lone, damping=1.0))
    assert torch.equal(default, plain)


def test_particles_have_no_weight_decay_by_default_and_adaptation_keeps_the_baselines():
    from bmtpt_cli.settings import resolve_settings

    assert resolve_settings("source", "glue6", {}).weight_decay == 0.0
    assert resolve_settings("adapt", "glue6", {}).weight_decay == 1e-5
    assert source_config().weight_decay == 0.0


def test_example_weighting_averages_each_examples_own_token_mean(runner, demo_examples):
    """loss_weighting="examples": L_j = mean over examples of each one's token-mean loss (checked one example at a time)."""
    examples = [*demo_examples["demo_sentiment"][:2], *demo_examples["demo_nli"][:2]]  # targets of different lengths
    assert len({len(e.target) for e in examples}) > 1
    start = torch.randn(2, 4, runner.d_model, generator=torch.Generator().manual_seed(2))
    by_example, *_ = svgd_step(runner, torch.nn.Parameter(start.clone()), examples, damping=1.0, likelihood_scale=1.0,
                              bandwidth=None, loss_weighting="examples")
    by_token, *_ = svgd_step(runner, torch.nn.Parameter(start.clone()), examples, damping=1.0, likelihood_scale=1.0,
                            bandwidth=None)
    singles = torch.stack([particle_losses(runner, start, runner.encode([e.source], [e.target])) for e in examples])  # (B, M)
    torch.testing.assert_close(by_example, singles.mean(dim=0), rtol=1e-5, atol=1e-6)
    batch = runner.encode([e.source for e in examples], [e.target for e in examples])
    torch.testing.assert_close(by_token, particle_losses(runner, start, batch), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(by_example, by_token)


def test_the_particles_optimizer_is_torch_adamw_in_its_fused_form():
    from bmtpt_cli.source.svgd import adamw

    g = torch.Generator().manual_seed(0)
    start = torch.randn(5, 8, 16, generator=g)
    grads = [torch.randn(5, 8, 16, generator=g) for _ in range(10)]
    ours, ref = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    fused = adamw([ours], lr=0.3, weight_decay=1e-5)
    plain = torch.optim.AdamW([ref], lr=0.3, weight_decay=1e-5, foreach=False, fused=False)
    assert fused.defaults["fused"] is True  # CPU has a fused AdamW since torch 2.4
    for grad in grads:
        for param, optimizer in ((ours, fused), (ref, plain)):
            param.grad = grad.clone()
            optimizer.step()
    assert not torch.equal(ours.detach(), start)
    torch.testing.assert_close(ours.detach(), ref.detach(), rtol=1e-5, atol=1e-6)
