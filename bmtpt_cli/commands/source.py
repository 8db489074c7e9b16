"""`bmtpt source`: learn the source posterior's particles and write particles.safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bmtpt_cli.commands.common import (
    CheckpointEvery,
    DataDir,
    LabelStyle,
    Device,
    Compile,
    Force,
    GradCheckpointing,
    MaxSourceLength,
    MaxTargetLength,
    Model,
    Precision,
    Preset,
    Resume,
    Seed,
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
from bmtpt_cli.console import console
from bmtpt_cli.distributed import is_main_process
from bmtpt_cli.settings import SourceSettings, help_for, resolve_settings


def _h(name: str) -> str:
    return help_for(SourceSettings, name)


def source_command(
    preset: Preset = None,
    tasks: Annotated[Optional[str], typer.Option(help=_h("tasks"))] = None,
    particles: Annotated[Optional[int], typer.Option(help=_h("particles"))] = None,
    steps: Annotated[Optional[int], typer.Option(help=_h("steps"))] = None,
    model: Model = None,
    prompt_length: Annotated[Optional[int], typer.Option(help=_h("prompt_length"))] = None,
    examples_per_task: Annotated[Optional[int], typer.Option(help=_h("examples_per_task"))] = None,
    sample_tasks: Annotated[Optional[int], typer.Option(help=_h("sample_tasks"))] = None,
    lr: Annotated[Optional[float], typer.Option(help=_h("lr"))] = None,
    warmup_steps: WarmupSteps = None,
    weight_decay: WeightDecay = None,
    damping: Annotated[Optional[float], typer.Option(help=_h("damping"))] = None,
    damping_c: Annotated[Optional[float], typer.Option(help=_h("damping_c"))] = None,
    likelihood_scale: Annotated[Optional[float], typer.Option(help=_h("likelihood_scale"))] = None,
    bandwidth: Annotated[Optional[float], typer.Option(help=_h("bandwidth"))] = None,
    vocab_top_k: Annotated[Optional[int], typer.Option(help=_h("vocab_top_k"))] = None,
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
    """Learn M particles of the source tasks' joint posterior with Damped SVGD (SPEC §2)."""
    flags = given(locals())
    with user_errors():
        settings = resolve_settings("source", preset, flags)
        out_path = run_source(settings)
        if is_main_process():
            console.print(f"wrote {out_path}", markup=False)


def run_source(settings: SourceSettings) -> Path:
    """Train the particles for `settings` and write them; returns the artifact's path."""
    from bmtpt_cli.data.registry import resolve_tasks

    tasks = resolve_tasks(settings.tasks)
    checkpoint_path, log_path = sidecar(settings.out, ".ckpt"), sidecar(settings.out, ".log.jsonl")
    with data_parallel(settings) as (dist, device), output_lock(settings.out, dist):  # lock first: one run per output
        check_outputs(settings.out, checkpoint_path, force=settings.force, resume=settings.resume)
        train_by_task = task_split(tasks, "train", settings)  # data problems show before the model loads
        return _train_and_write(settings, tasks, train_by_task, checkpoint_path, log_path, dist, device)


def _train_and_write(settings: SourceSettings, tasks, train_by_task, checkpoint_path: Path, log_path: Path, dist, device) -> Path:
    from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles
    from bmtpt_cli.svgd.train import SourceConfig, StepRecord, train_source

    runner = load_runner(settings, device)
    config = SourceConfig(
        num_particles=settings.particles,
        prompt_length=settings.prompt_length,
        steps=settings.steps,
        examples_per_task=settings.examples_per_task,
        sample_tasks=settings.sample_tasks,
        lr=settings.lr,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        damping=settings.damping,
        damping_c=settings.damping_c,
        likelihood_scale=settings.likelihood_scale,
        bandwidth=settings.bandwidth,
        vocab_top_k=settings.vocab_top_k,
        seed=settings.seed,
        checkpoint_every=settings.checkpoint_every,
    )
    fingerprint = {
        **config.fingerprint(),
        "model": settings.model,
        "tasks": [task.name for task in tasks],
        **data_fingerprint(settings),
    }
    with progress_bar(enabled=dist.is_main) as progress:
        bar = progress.add_task("source", total=settings.steps, info="")

        def show(record: StepRecord) -> None:
            info = f"loss {record.loss:.4f} · h {record.bandwidth:.3g} · dist {record.mean_distance:.3g}"
            progress.update(bar, completed=record.step, info=info)

        particles = train_source(
            runner,
            train_by_task,
            config,
            checkpoint_path=checkpoint_path,
            log_path=log_path,
            resume=settings.resume,
            fingerprint=fingerprint,
            on_start=lambda step: progress.update(bar, completed=step),
            on_step=show,
            dist=dist,
        )
    if not dist.is_main:
        return settings.out
    metadata = common_metadata(
        kind=PARTICLES,
        model=settings.model,
        d_model=runner.d_model,
        prompt_length=settings.prompt_length,
        config=settings.model_dump(mode="json"),
    )
    save_particles(settings.out, particles, tasks=[task.name for task in tasks], metadata=metadata)
    checkpoint_path.unlink(missing_ok=True)  # the run is complete: its artifact replaces the checkpoint
    return settings.out
