"""bf16 autocast, gradient checkpointing and torch.compile: accepted, finite, and the same numbers (within precision)."""

import pytest
import torch

from bmtpt_cli.runner.model import autocast_dtype, enable_gradient_checkpointing, load_frozen_t5
from bmtpt_cli.runner.runner import FrozenT5Runner
from clihelpers import FAST, bmtpt
from reference import particle_losses


def _losses_and_grads(runner, examples, particles):
    particles = particles.clone().requires_grad_(True)
    batch = runner.encode([e.source for e in examples], [e.target for e in examples])
    losses = particle_losses(runner, particles, batch)
    (grads,) = torch.autograd.grad(losses.sum(), particles)
    return losses.detach(), grads


def test_bf16_autocast_keeps_float32_prompts_and_close_losses(tiny, demo_examples):
    model, tokenizer = tiny
    examples = demo_examples["demo_nli"][:4]
    particles = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(0))
    fp32 = _losses_and_grads(FrozenT5Runner(model, tokenizer), examples, particles)
    bf16 = _losses_and_grads(FrozenT5Runner(model, tokenizer, autocast_dtype=torch.bfloat16), examples, particles)
    assert bf16[1].dtype == torch.float32  # the prompts' gradient stays float32 (master copy)
    assert torch.isfinite(bf16[0]).all() and torch.isfinite(bf16[1]).all()
    torch.testing.assert_close(bf16[0], fp32[0], rtol=3e-2, atol=3e-2)
    assert not torch.equal(bf16[0], fp32[0])  # it really ran in bf16


def test_precision_choice():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16


def test_gradient_checkpointing_gives_the_same_losses_and_gradients(demo_examples):
    plain_model, tokenizer = load_frozen_t5("tiny")
    checkpointed, _ = load_frozen_t5("tiny")
    enable_gradient_checkpointing(checkpointed)
    examples = demo_examples["demo_sentiment"][:4]
    particles = torch.randn(3, 4, 64, generator=torch.Generator().manual_seed(1))
    expected = _losses_and_grads(FrozenT5Runner(plain_model, tokenizer), examples, particles)
    got = _losses_and_grads(FrozenT5Runner(checkpointed, tokenizer), examples, particles)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])
    assert all(not p.requires_grad and p.grad is None for p in checkpointed.parameters())


def test_cli_accepts_the_speed_flags(tmp_path):
    result = bmtpt("source", *FAST["source"], "--precision", "bf16", "--grad-checkpointing", "--out", tmp_path / "p.safetensors")
    assert result.exit_code == 0, result.output
    bad = bmtpt("source", "--precision", "fp16")
    assert bad.exit_code == 2 and "--precision" in bad.stderr


@pytest.mark.slow
def test_compiled_model_gives_finite_particles_close_to_eager(tmp_path):
    eager = bmtpt("source", *FAST["source"], "--steps", "2", "--out", tmp_path / "eager.safetensors")
    compiled = bmtpt("source", *FAST["source"], "--steps", "2", "--compile", "--out", tmp_path / "compiled.safetensors")
    assert eager.exit_code == 0 and compiled.exit_code == 0, compiled.output
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "eager.safetensors")["particles"], load_file(tmp_path / "compiled.safetensors")["particles"]
    assert torch.isfinite(b).all()
    torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
