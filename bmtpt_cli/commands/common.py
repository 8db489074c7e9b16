"""What the commands share: error reporting, model loading, task data, progress bars, output paths."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typing import Annotated, Optional

import typer

from bmtpt_cli.console import err_console
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.settings import AdaptHyperparameters, CommonSettings, TrainingSettings, help_for

PRESET_HELP = "Preset: a name from presets/ (demo, glue6, …) or a path to a .toml file. Default: demo."


def _option(settings_cls, name: str, *flags: str, kind=str):
    """A Typer option whose help text is the settings field's description; None when not given."""
    return Annotated[Optional[kind], typer.Option(*flags, help=help_for(settings_cls, name))]


# Options several commands share, declared once (a command's own options sit in its module).
Preset = Annotated[Optional[str], typer.Option(help=PRESET_HELP)]
Model = _option(CommonSettings, "model")
Seed = _option(CommonSettings, "seed", kind=int)
Device = _option(CommonSettings, "device")
MaxSourceLength = _option(CommonSettings, "max_source_length", kind=int)
MaxTargetLength = _option(CommonSettings, "max_target_length", kind=int)
Precision = _option(CommonSettings, "precision")
Compile = _option(CommonSettings, "compile", "--compile", kind=bool)
GradCheckpointing = _option(CommonSettings, "grad_checkpointing", "--grad-checkpointing", kind=bool)
Taskless = _option(CommonSettings, "taskless", "--taskless", kind=bool)
LabelStyle = _option(CommonSettings, "label_style")
DataDir = _option(CommonSettings, "data_dir", kind=Path)
Force = _option(CommonSettings, "force", "--force", kind=bool)
WarmupSteps = _option(TrainingSettings, "warmup_steps", kind=int)
WeightDecay = _option(TrainingSettings, "weight_decay", kind=float)
CheckpointEvery = _option(TrainingSettings, "checkpoint_every", kind=int)
Resume = _option(TrainingSettings, "resume", "--resume", kind=bool)
BatchSize = _option(AdaptHyperparameters, "batch_size", kind=int)
LrShared = _option(AdaptHyperparameters, "lr_shared", kind=float)
LrScales = _option(AdaptHyperparameters, "lr_scales", kind=float)
Sigma = _option(AdaptHyperparameters, "sigma", kind=float)
Prior = _option(AdaptHyperparameters, "prior", "--prior/--no-prior", kind=bool)
EvalBatchSize = _option(AdaptHyperparameters, "eval_batch_size", kind=int)
MixingCap = _option(AdaptHyperparameters, "mixing_cap", kind=int)


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user actually gave (Typer passes None for the others)."""
    return {key: value for key, value in options.items() if value is not None and key != "preset"}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `BmtptError` into one line on stderr and its exit code (2), with no traceback.

    `BMTPT_DEBUG=1` re-raises instead, for bug reports.
    """
    try:
        yield
    except BmtptError as exc:
        if os.environ.get("BMTPT_DEBUG") == "1":
            raise
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None


def sidecar(out: Path, suffix: str) -> Path:
    """A file beside an output, e.g. particles.safetensors → particles.ckpt."""
    return Path(out).with_suffix(suffix)


def check_outputs(out: Path, checkpoint: Path, *, force: bool, resume: bool) -> None:
    """Refuse to clobber an existing output or an unfinished run's checkpoint, unless asked to."""
    from bmtpt_cli.artifacts import check_writable

    check_writable(out, force=force)
    if resume and not checkpoint.is_file():
        raise BmtptError(f"--resume given but no checkpoint at '{checkpoint}': run without --resume to start fresh")
    if not resume and checkpoint.exists() and not force:
        raise BmtptError(
            f"an unfinished run's checkpoint exists at '{checkpoint}': pass --resume to continue it or --force to start over"
        )


@contextlib.contextmanager
def data_parallel(settings) -> Iterator[tuple]:
    """(Distributed, device) for this process: joins the group `torchrun`/`accelerate launch` set up."""
    from bmtpt_cli.distributed import setup_distributed, teardown_distributed
    from bmtpt_cli.runner.model import resolve_device

    dist, device = setup_distributed(resolve_device(settings.device))
    try:
        yield dist, device
    finally:
        teardown_distributed()


def output_lock(out: Path, dist):
    """The output's lock, held by the main process only (the others write nothing)."""
    from bmtpt_cli.artifacts import OutputLock

    return OutputLock(out) if dist.is_main else contextlib.nullcontext()


def load_runner(settings, device=None):
    """The frozen T5 runner for a command's settings (on `device`, default: --device)."""
    from bmtpt_cli.runner.model import (
        autocast_dtype,
        compile_model,
        enable_gradient_checkpointing,
        load_frozen_t5,
        resolve_device,
    )
    from bmtpt_cli.runner.runner import FrozenT5Runner

    device = device or resolve_device(settings.device)
    dtype = autocast_dtype(settings.precision, device)
    with err_console.status(f"loading {settings.model} …"):
        model, tokenizer = load_frozen_t5(settings.model, device=device)
    if settings.grad_checkpointing:
        enable_gradient_checkpointing(model)
    if settings.compile:
        compile_model(model)
    return FrozenT5Runner(
        model,
        tokenizer,
        max_source_length=settings.max_source_length,
        max_target_length=settings.max_target_length,
        autocast_dtype=dtype,
    )


def task_split(tasks, split: str, settings) -> dict[str, list]:
    """Each task's examples of one split, formatted as the settings ask (taskless, label style, data dir)."""
    return {task.name: split_examples(task, split, settings) for task in tasks}


def split_examples(task, split: str, settings) -> list:
    """One task's examples of one split, formatted as the settings ask."""
    return task.examples(split, taskless=settings.taskless, label_style=settings.label_style, data_dir=settings.data_dir)


def data_fingerprint(settings) -> dict[str, Any]:
    """The settings that change which examples a run sees (part of every checkpoint's fingerprint)."""
    return {
        "taskless": settings.taskless,
        "label_style": settings.label_style,
        "data_dir": str(settings.data_dir) if settings.data_dir else None,
        "max_source_length": settings.max_source_length,
        "max_target_length": settings.max_target_length,
        "precision": settings.precision,
    }


def progress_bar(*, enabled: bool = True):
    """A rich progress bar on stderr with a free-text field for the latest step's figures."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
        transient=False,
        disable=not enabled,
    )
