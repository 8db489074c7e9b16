"""--grad-checkpointing on a T5 that HAS dropout (a real T5: 0.1) must give eval-mode numbers, and still recompute.

The offline `tiny` model has dropout 0, so it cannot show dropout leaking in: these tests build the same small
T5 with `dropout_rate=0.1` (random weights, seeded).
"""

import pytest
import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.model import enable_gradient_checkpointing, tiny_t5_config
from bmtpt_cli.runner.runner import FrozenT5Runner
from reference import particle_losses

SOURCES = ["premise: a cat sat on the mat. hypothesis: an animal sat.", "the film was a delight", "x"]
TARGETS = ["entailment", "positive", "no"]


def _dropout_t5(seed: int = 0):
    """A small frozen T5 with dropout 0.1 everywhere (feed-forward, residual, attention), in eval mode."""
    from transformers import ByT5Tokenizer, T5ForConditionalGeneration

    config = tiny_t5_config()
    config.dropout_rate = 0.1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    model.requires_grad_(False)
    model.eval()
    return model, ByT5Tokenizer()


def _losses_and_grads(runner, particles):
    particles = particles.clone().requires_grad_(True)
    losses = particle_losses(runner, particles, runner.encode(SOURCES, TARGETS))  # (M,)
    (grads,) = torch.autograd.grad(losses.sum(), particles)
    return losses.detach(), grads


def _particles():
    return torch.randn(3, 4, 64, generator=torch.Generator().manual_seed(1))


def test_the_test_model_really_has_dropout():
    """Guard for the tests below: in train mode this model's losses are random (so dropout is on)."""
    model, tokenizer = _dropout_t5()
    runner = FrozenT5Runner(model, tokenizer)
    eval_losses = _losses_and_grads(runner, _particles())[0]
    model.train()
    torch.manual_seed(0)
    train_losses = _losses_and_grads(runner, _particles())[0]
    assert (train_losses - eval_losses).abs().max() > 1e-3


def test_checkpointing_with_dropout_gives_eval_losses_and_gradients():
    plain_model, tokenizer = _dropout_t5()
    checkpointed, _ = _dropout_t5()
    enable_gradient_checkpointing(checkpointed)
    expected = _losses_and_grads(FrozenT5Runner(plain_model, tokenizer), _particles())
    runner = FrozenT5Runner(checkpointed, tokenizer)
    torch.manual_seed(0)
    first = _losses_and_grads(runner, _particles())
    torch.manual_seed(1)  # a different random stream: dropout, if on, would draw different masks
    second = _losses_and_grads(runner, _particles())
    torch.testing.assert_close(first[0], second[0], rtol=0, atol=1e-6)  # two identical calls, identical losses
    torch.testing.assert_close(first[1], second[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(first[0], expected[0], rtol=0, atol=1e-6)  # = eval mode without checkpointing
    torch.testing.assert_close(first[1], expected[1], rtol=0, atol=1e-6)
    assert all(not p.requires_grad and p.grad is None for p in checkpointed.parameters())


def test_checkpointing_still_recomputes_in_the_backward_pass():
    """The fix must not buy eval numbers by switching checkpointing off: each block's layers run twice."""
    model, tokenizer = _dropout_t5()
    enable_gradient_checkpointing(model)
    calls = []
    # The block's first sub-layer, called from inside the checkpointed block (a pre-hook: the recomputation
    # stops early, once it has rebuilt every saved tensor, so a layer's forward hook may never fire).
    attention = model.get_encoder().block[0].layer[0]
    handle = attention.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    try:
        runner = FrozenT5Runner(model, tokenizer)
        particles = _particles().requires_grad_(True)
        losses = particle_losses(runner, particles, runner.encode(SOURCES, TARGETS))
        assert len(calls) == 1
        losses.sum().backward()
        assert len(calls) == 2  # recomputed in the backward pass
    finally:
        handle.remove()


def test_inference_is_unchanged_and_the_top_model_stays_in_eval_mode():
    plain_model, tokenizer = _dropout_t5()
    checkpointed, _ = _dropout_t5()
    enable_gradient_checkpointing(checkpointed)
    prompts = _particles()
    plain, ckpt = FrozenT5Runner(plain_model, tokenizer), FrozenT5Runner(checkpointed, tokenizer)
    candidates = [("entailment", "neutral"), ("positive", "negative"), ("yes", "no")]
    for a, b in zip(plain.candidate_log_likelihoods(prompts, SOURCES, candidates),
                    ckpt.candidate_log_likelihoods(prompts, SOURCES, candidates)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert plain.generate(prompts, SOURCES, max_new_tokens=3) == ckpt.generate(prompts, SOURCES, max_new_tokens=3)
    assert not checkpointed.training


def test_a_layer_left_in_training_mode_is_caught():
    """The runtime check compares numbers, not attribute names: any dropout left on makes it fail."""
    from bmtpt_cli.runner.model import check_checkpointing_keeps_eval_numbers

    model, _ = _dropout_t5()
    enable_gradient_checkpointing(model)
    check_checkpointing_keeps_eval_numbers(model)  # passes after the fix
    model.get_encoder().block[1].layer[0].SelfAttention.training = True  # e.g. a future layer that drops out itself
    with pytest.raises(BmtptError, match="--grad-checkpointing"):
        check_checkpointing_keeps_eval_numbers(model)
