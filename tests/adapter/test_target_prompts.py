"""The target prompt W ⊙ abᵀ, the prior term, and multi-target isolation."""

import torch

from bmtpt_cli.adapter.prompt import TargetPrompts, prior_penalty
from bmtpt_cli.adapter.train import adapt
from configs import adapt_config
from bmtpt_cli.data.registry import resolve_tasks


def test_composed_prompt_is_w_times_a_b_transpose():
    torch.manual_seed(0)
    prompts = TargetPrompts(torch.randn(3, 4), ["x", "y"])
    with torch.no_grad():
        prompts.row_scales[1].copy_(torch.tensor([1.0, 2.0, -1.0]))
        prompts.col_scales[1].copy_(torch.tensor([0.5, 1.0, 3.0, -2.0]))
    composed = prompts.compose(1).double()
    W, a, b = prompts.shared.double(), prompts.row_scales[1].double(), prompts.col_scales[1].double()
    for i in range(3):
        for j in range(4):
            assert abs(composed[i, j] - W[i, j] * a[i] * b[j]) < 1e-5 * (1 + abs(W[i, j] * a[i] * b[j]))  # float32 vs float64
    batch = prompts([1, 0, 1])  # per-example prompts
    assert batch.shape == (3, 3, 4)
    torch.testing.assert_close(batch[0], prompts.compose(1))
    torch.testing.assert_close(batch[1], prompts.shared)  # a = 1, b = 1 at initialisation


def test_prior_gradient_is_difference_over_sigma_squared():
    theta = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    mean = torch.randn(5, 6, dtype=torch.float64)
    sigma = 0.7
    (grad,) = torch.autograd.grad(prior_penalty(theta, mean, sigma), theta)
    torch.testing.assert_close(grad, (theta.detach() - mean) / sigma**2)
    expected_value = ((theta.detach() - mean) ** 2).sum() / (2 * sigma**2)
    torch.testing.assert_close(prior_penalty(theta, mean, sigma).detach(), expected_value)


def test_batch_prior_term_weights_tasks_by_their_share():
    torch.manual_seed(1)
    prompts = TargetPrompts(torch.randn(2, 3), ["x", "y"])
    with torch.no_grad():
        prompts.row_scales[1].fill_(2.0)
    mean = torch.zeros(2, 3)
    term = prompts.prior_term([0, 1, 1, 1], mean, 1.0)
    expected = 0.25 * prior_penalty(prompts.compose(0), mean, 1.0) + 0.75 * prior_penalty(prompts.compose(1), mean, 1.0)
    torch.testing.assert_close(term, expected)


def test_batch_of_task_a_leaves_task_b_scales_unchanged():
    torch.manual_seed(2)
    prompts = TargetPrompts(torch.randn(3, 4), ["a", "b"])
    optimizer = torch.optim.AdamW(
        [{"params": [prompts.shared], "lr": 0.3}, {"params": prompts.scale_parameters(), "lr": 0.4}], weight_decay=0.01
    )
    target = torch.randn(3, 4)

    def step(task_ids):
        loss = (prompts(task_ids) - target).pow(2).sum() + prompts.prior_term(task_ids, torch.zeros(3, 4), 1.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step([0, 1])  # both tasks: B now has optimizer momentum
    b_before = [p.detach().clone() for p in (prompts.row_scales[1], prompts.col_scales[1])]
    a_before = prompts.row_scales[0].detach().clone()
    step([0, 0, 0])  # a batch of task A only
    assert torch.equal(prompts.row_scales[1], b_before[0])
    assert torch.equal(prompts.col_scales[1], b_before[1])
    assert not torch.equal(prompts.row_scales[0], a_before)


def test_adapt_keeps_the_best_dev_state_and_trains_only_prompts(runner):
    tasks = resolve_tasks("demo_review,demo_rte")
    train = {t.name: t.examples("train")[:16] for t in tasks}
    dev = {t.name: t.examples("validation")[:8] for t in tasks}
    init = torch.randn(4, runner.d_model)
    before = {name: tensor.clone() for name, tensor in runner.model.state_dict().items()}
    config = adapt_config(steps=4, batch_size=4, warmup_steps=1, eval_every=2, seed=0)
    result = adapt(runner, tasks, train, dev, init, config)
    assert set(result.dev_metrics) == {"demo_review", "demo_rte"}
    assert result.best_step in (2, 4)
    assert all(0.0 <= v <= 1.0 for v in result.dev_metrics.values())
    assert not torch.equal(result.prompts.shared, init)  # W was trained
    for name, tensor in runner.model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    again = adapt(runner, tasks, train, dev, init, config)
    assert torch.equal(again.prompts.shared, result.prompts.shared)  # same seed, same result


def test_random_init_has_no_prior_term_at_any_sigma(runner):
    """Vanilla prompt tuning (no source posterior, prior_mean None) is unchanged by σ: no prior at all."""
    tasks = resolve_tasks("demo_rte")
    train = {"demo_rte": tasks[0].examples("train")[:16]}
    init = torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(1))
    tight = adapt(runner, tasks, train, {}, init, adapt_config(steps=3, batch_size=4, warmup_steps=1, eval_every=None, sigma=1e-3))
    none = adapt(runner, tasks, train, {}, init, adapt_config(steps=3, batch_size=4, warmup_steps=1, eval_every=None))
    assert torch.equal(tight.prompts.shared, none.prompts.shared)
    # with a source posterior, the same tight σ does pull the prompt
    pulled = adapt(runner, tasks, train, {}, init, adapt_config(steps=3, batch_size=4, warmup_steps=1, eval_every=None, sigma=1e-3),
                   prior_mean=torch.zeros_like(init))
    assert not torch.equal(pulled.prompts.shared, none.prompts.shared)
