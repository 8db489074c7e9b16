"""`bmtpt adapt`: adapt target prompts from the source posterior and write prompts.safetensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from bmtpt_cli.commands.common import (
    BatchSize,
    CheckpointEvery,
    DataDir,
    LabelStyle,
    Device,
    EvalBatchSize,
    Compile,
    Force,
    GradCheckpointing,
    LrScales,
    LrShared,
    MaxSourceLength,
    MaxTargetLength,
    MixingCap,
    Model,
    Precision,
    Preset,
    Prior,
    Resume,
    Seed,
    Sigma,
    Taskless,
    WarmupSteps,
    WeightDecay,
    check_outputs,
    data_fingerprint,
    data_parallel,
    output_lock,
    given,
    load_runner,
    progress_bar,
    sidecar,
    task_split,
    user_errors,
)
from bmtpt_cli.console import console, err_console
from bmtpt_cli.distributed import is_main_process
from bmtpt_cli.settings import AdaptSettings, help_for, resolve_settings


def _h(name: str) -> str:
    return help_for(AdaptSettings, name)


def adapt_command(
    preset: Preset = None,
    tasks: Annotated[Optional[str], typer.Option(help=_h("tasks"))] = None,
    init: Annotated[Optional[str], typer.Option(help=_h("init"))] = None,
    steps: Annotated[Optional[int], typer.Option(help=_h("steps"))] = None,
    model: Model = None,
    prompt_length: Annotated[Optional[int], typer.Option(help=_h("prompt_length"))] = None,
    batch_size: BatchSize = None,
    lr_shared: LrShared = None,
    lr_scales: LrScales = None,
    sigma: Sigma = None,
    prior: Prior = None,
    warmup_steps: WarmupSteps = None,
    weight_decay: WeightDecay = None,
    eval_every: Annotated[Optional[int], typer.Option(help=_h("eval_every"))] = None,
    eval_batch_size: EvalBatchSize = None,
    mixing_cap: MixingCap = None,
    seed: Seed = None,
    device: Device = None,
    max_source_length: MaxSourceLength = None,
    max_target_length: MaxTargetLength = None,
    precision: Precision = None,
    compile: Compile = None,
    grad_checkpointing: GradCheckpointing = None,
    taskless: Taskless = None,
    label_style: LabelStyle = None,
    data_dir: DataDir = None,
    checkpoint_every: CheckpointEvery = None,
    resume: Resume = None,
    out: Annotated[Optional[Path], typer.Option(help=_h("out"))] = None,
    force: Force = None,
) -> None:
    """Adapt target prompts W ⊙ abᵀ from the particle mean, with the Gaussian prior (SPEC §3)."""
    flags = given(locals())
    with user_errors():
        settings = resolve_settings("adapt", preset, flags)
        out_path, dev_metrics = run_adapt(settings)
        if is_main_process():
            render_dev(dev_metrics)
            console.print(f"wrote {out_path}", markup=False)


def adapt_config(settings, *, steps: int, eval_every: int | None, seed: int):
    """The core `AdaptConfig` from `adapt` or `evaluate --shots` settings."""
    from bmtpt_cli.adapter.train import AdaptConfig

    return AdaptConfig(
        steps=steps,
        batch_size=settings.batch_size,
        lr_shared=settings.lr_shared,
        lr_scales=settings.lr_scales,
        sigma=settings.sigma,
        prior=settings.prior,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        eval_every=eval_every,
        eval_batch_size=settings.eval_batch_size,
        mixing_cap=settings.mixing_cap,
        seed=seed,
        checkpoint_every=getattr(settings, "checkpoint_every", steps),
    )


def run_adapt(settings: AdaptSettings) -> tuple[Path, dict[str, float]]:
    """Adapt the target prompts for `settings`, write them; returns the path and the dev metrics."""
    from bmtpt_cli.adapter.init import read_init_file
    from bmtpt_cli.data.registry import resolve_tasks

    tasks = resolve_tasks(settings.tasks)
    checkpoint_path, log_path = sidecar(settings.out, ".ckpt"), sidecar(settings.out, ".log.jsonl")
    with data_parallel(settings) as (dist, device), output_lock(settings.out, dist):  # lock first: one run per output
        check_outputs(settings.out, checkpoint_path, force=settings.force, resume=settings.resume)
        train_by_task = task_split(tasks, "train", settings)  # data problems show before the model loads
        dev_by_task = task_split(tasks, "validation", settings)
        init_file = read_init_file(settings.init)  # a wrong init file shows before the model loads
        return _train_and_write(settings, tasks, train_by_task, dev_by_task, init_file, checkpoint_path, log_path, dist, device)


def _train_and_write(settings: AdaptSettings, tasks, train_by_task, dev_by_task, init_file, checkpoint_path, log_path, dist, device):
    from bmtpt_cli.adapter.init import resolve_init
    from bmtpt_cli.adapter.train import AdaptStepRecord, adapt
    from bmtpt_cli.artifacts import PROMPTS, common_metadata, save_prompts

    runner = load_runner(settings, device)
    init = resolve_init(
        settings.init, runner, prompt_length=settings.prompt_length, required_length=settings.explicit("prompt_length"),
        seed=settings.seed, init_file=init_file,
    )
    if init.model is not None and init.model != settings.model and dist.is_main:
        err_console.print(f"warning: '{settings.init}' was made with model {init.model}, adapting with {settings.model}", markup=False)
    config = adapt_config(settings, steps=settings.steps, eval_every=settings.eval_every, seed=settings.seed)
    if init.prior_mean is None and config.prior and dist.is_main:
        err_console.print("note: --init random has no source posterior, so no prior term is used (vanilla prompt tuning)")
    fingerprint = {
        **config.fingerprint(),
        "model": settings.model,
        "tasks": [task.name for task in tasks],
        "init_sha256": init.sha256,
        "init": settings.init,
        **data_fingerprint(settings),
    }
    with progress_bar(enabled=dist.is_main) as progress:
        bar = progress.add_task("adapt", total=settings.steps, info="")

        def show(record: AdaptStepRecord) -> None:
            info = f"loss {record.loss:.4f}"
            if record.dev:
                info += f" · dev mean {sum(record.dev.values()) / len(record.dev):.3f}"
            progress.update(bar, completed=record.step, info=info)

        result = adapt(
            runner,
            tasks,
            train_by_task,
            dev_by_task,
            init.prompt,
            config,
            prior_mean=init.prior_mean,
            label_style=settings.label_style,
            checkpoint_path=checkpoint_path,
            log_path=log_path,
            resume=settings.resume,
            fingerprint=fingerprint,
            on_start=lambda step: progress.update(bar, completed=step),
            on_step=show,
            dist=dist,
        )
    if not dist.is_main:
        return settings.out, result.dev_metrics
    metadata = common_metadata(
        kind=PROMPTS,
        model=settings.model,
        d_model=runner.d_model,
        prompt_length=init.prompt.shape[0],
        config=settings.model_dump(mode="json"),
    )
    metadata |= {
        "bmtpt.init": settings.init,
        "bmtpt.init_sha256": init.sha256,
        "bmtpt.dev_metrics": json.dumps(result.dev_metrics),
        "bmtpt.best_step": str(result.best_step),
    }
    save_prompts(settings.out, result.prompts.shared.detach(), result.prompts.export(), metadata=metadata)
    checkpoint_path.unlink(missing_ok=True)
    return settings.out, result.dev_metrics


def render_dev(dev_metrics: dict[str, float]) -> None:
    """Print the kept state's dev metrics as a table."""
    from rich.table import Table

    table = Table(title="kept prompts (dev)")
    table.add_column("task")
    table.add_column("dev", justify="right")
    for task, value in dev_metrics.items():
        table.add_row(task, f"{value:.4f}")
    console.print(table)
