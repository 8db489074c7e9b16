"""Export tests' helpers: a prompts artifact with non-trivial W, a_k, b_k (so the composition matters), and the job."""

from __future__ import annotations

import json

import torch

from bmtpt_cli.artifacts import PROMPTS, common_metadata, save_prompts
from bmtpt_cli.settings import defaults

TASKS = ("demo_review", "demo_rte")
LENGTH, WIDTH = 5, 64  # l = 5 vectors of the tiny model's width
CONFIG = defaults("adapt").model_dump(mode="json") | {"init": "random", "model": "tiny", "steps": 4, "warmup_steps": 1, "tasks": list(TASKS)}
"""The settings `bmtpt adapt` records (its defaults, with a few values of a short run)."""


def write_prompts(path, *, seed: int = 3, tasks=TASKS, width: int = WIDTH):
    """Save W `(l, d)` and per-task (a, b) drawn from a seeded generator; returns (W, scales)."""
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(LENGTH, width, generator=g)  # (l, d)
    scales = {task: (1 + 0.5 * torch.randn(LENGTH, generator=g), 1 + 0.5 * torch.randn(width, generator=g)) for task in tasks}
    metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=width, prompt_length=LENGTH, config=CONFIG) | {
        "bmtpt.init": "random",
        "bmtpt.init_sha256": "",
        "bmtpt.dev_metrics": json.dumps({task: 0.6 + 0.1 * k for k, task in enumerate(tasks)}),
        "bmtpt.dev_metric_names": json.dumps({task: "accuracy" for task in tasks}),
        "bmtpt.best_step": "40",
        "bmtpt.prior": "none: the init has no source posterior (vanilla prompt tuning)",
        "bmtpt.data": json.dumps({"taskless": False, "label_style": "words"}),
    }
    save_prompts(path, shared, scales, metadata=metadata)
    return shared, scales


def export_job(prompts, out, **overrides):
    """An `ExportJob` as `bmtpt export --prompts PROMPTS --out OUT` builds it, with `overrides`."""
    from bmtpt_cli.export.run import ExportJob
    from bmtpt_cli.settings import SETTINGS_BY_COMMAND

    values = dict(
        prompts=prompts, format="peft", tasks=None, multitask=False, out=out, force=False, base_model=None,
        settings_by_command={name: frozenset(cls.model_fields) for name, cls in SETTINGS_BY_COMMAND.items()},
    )
    return ExportJob(**(values | overrides))
