"""An input-dependent prompt module (what ATTEMPT needs) trains, is scored and resumes like any other:
the adaptation loop and scoring take the prompt-module interface, not `TargetPrompts`."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from torch import nn

from bmtpt_cli.adapter.train import adapt
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.runtime.checkpoint import Interrupted
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.scoring.score import score_task
from configs import adapt_config


class LengthScaled(nn.Module):
    """θ(x) = W · (1 + α · len(x) / 100): one prompt per input, W and α trained."""

    fixed = False

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.shared = nn.Parameter(init.clone())
        self.alpha = nn.Parameter(torch.zeros(()))

    @property
    def length(self) -> int:
        return self.shared.shape[0]

    def forward(self, task_ids, sources=None):
        scale = 1 + self.alpha * torch.tensor([len(s) / 100 for s in sources], device=self.shared.device)
        return self.shared.unsqueeze(0) * scale.view(-1, 1, 1)  # (B, l, d)

    def scorer(self, task_index):
        module = self

        class Prompts:
            length = module.length

            def __call__(self, sources):
                return module([task_index] * len(sources), sources)

        return Prompts()

    def prior_term(self, task_ids, centre, sigma):
        return (self.shared - centre).pow(2).sum() / (2 * sigma**2)

    def parameter_groups(self, lr_shared, lr_scales):
        return [{"params": [self.shared], "lr": lr_shared}, {"params": [self.alpha], "lr": lr_scales}]

    def trained(self):
        return {"W": [self.shared], "alpha": [self.alpha]}


def _run(runner, files=None, stop_at=None):
    (task,) = resolve_tasks(["demo_rte"])
    train = {task.name: task.examples("train")[:16]}
    dev = {task.name: task.examples("validation")[:8]}
    module = LengthScaled(0.5 * torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(0)))
    config = adapt_config(steps=4, batch_size=4, warmup_steps=1, eval_every=2, checkpoint_every=10, lr_scales=0.5)

    def stop(record):
        if record.step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, mid-run

    return adapt(runner, [task], train, dev, module, config, prior_mean=torch.zeros(4, runner.d_model),
                 files=files, on_step=stop)


def test_an_input_dependent_prompt_trains_and_resumes_exactly(runner, tmp_path):
    full = _run(runner, RunFiles(tmp_path / "full.ckpt", tmp_path / "full.log.jsonl", False, {"run": 1}))
    assert float(full.prompts.alpha.detach()) != 0.0  # the input-dependent part received a gradient
    cut = RunFiles(tmp_path / "cut.ckpt", tmp_path / "cut.log.jsonl", False, {"run": 1})
    with pytest.raises(Interrupted):
        _run(runner, cut, stop_at=1)
    resumed = _run(runner, RunFiles(cut.checkpoint, cut.log, True, {"run": 1}))
    for name, tensor in full.prompts.state_dict().items():
        assert torch.equal(tensor, resumed.prompts.state_dict()[name]), name
    assert resumed.dev_metrics == full.dev_metrics and resumed.best_step == full.best_step


def test_scoring_a_prompt_function_equals_scoring_its_per_example_prompts(runner):
    (task,) = resolve_tasks(["demo_rte"])
    examples = task.examples("test")[:12]
    module = LengthScaled(torch.randn(4, runner.d_model, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        module.alpha.fill_(2.0)
        stacked = module([0] * len(examples), [e.source for e in examples])  # (E, l, d), made by hand
    assert len({len(e.source) for e in examples}) > 1  # so the examples get different prompts
    for decode in ("rank", "generate"):
        assert score_task(runner, module.scorer(0), task, examples, decode=decode) == \
            score_task(runner, stacked, task, examples, decode=decode)
