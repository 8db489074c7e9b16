"""The adaptation step in chunks of examples: the same loss and gradients as one pass, to float32 round-off."""

import torch

from bmtpt_cli.adapter.prompt import TargetPrompts
from bmtpt_cli.adapter.train import _loss_and_gradients
from bmtpt_cli.runtime.distributed import SINGLE
from configs import adapt_config


def _grads(runner, demo_examples, prior_mean):
    init = torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(0))
    prompts = TargetPrompts(init, ["demo_sentiment", "demo_nli"])
    with torch.no_grad():  # distinct scales, so a task's a, b are not all ones
        for p in prompts.parameters():
            p.mul_(1 + 0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    pairs = [(name, e) for name, examples in demo_examples.items() for e in examples[:3]]  # B = 6
    loss, prior = _loss_and_gradients(runner, prompts, pairs, {"demo_sentiment": 0, "demo_nli": 1}, prior_mean,
                                      adapt_config(sigma=0.5), SINGLE)
    return loss, prior, [p.grad.clone() for p in prompts.parameters()]


def test_chunked_adaptation_step_equals_one_pass(runner, demo_examples, monkeypatch):
    prior_mean = torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(1))
    whole = _grads(runner, demo_examples, prior_mean)
    assert runner.last_plan.passes == 1
    monkeypatch.setattr(runner, "chunk_sequences", 4)  # 6 examples in passes of 3
    chunked = _grads(runner, demo_examples, prior_mean)
    assert runner.last_plan.passes == 2
    torch.testing.assert_close(chunked[0], whole[0], rtol=1e-6, atol=1e-6)
    assert torch.equal(chunked[1], whole[1])  # the prior term is not chunked
    for got, want in zip(chunked[2], whole[2]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7 * want.abs().max().item())
