"""`bmtpt source` as one function: source tasks → frozen T5 → Damped SVGD → particles.safetensors,
or with `per_task` one prompt per source task → DIR/<task>.safetensors (SPEC §2, §3)."""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

import torch

from bmtpt_cli.artifacts import PARTICLES, PROMPTS, common_metadata, load_prompts, save_particles, save_prompts
from bmtpt_cli.artifacts.native import metadata_json
from bmtpt_cli.artifacts.task_prompts import task_prompt_path
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.data.task import Task
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.load import RunnerConfig, check_step_fits, load_runner
from bmtpt_cli.runner.model import resolve_device
from bmtpt_cli.runtime.checkpoint import LOWERABLE, check_fingerprint
from bmtpt_cli.runtime.distributed import data_parallel
from bmtpt_cli.runtime.files import check_output_directory, main_process_lock
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.runtime.memory import check_batch_within_data
from bmtpt_cli.runtime.outputs import RunOutput
from bmtpt_cli.runtime.progress import SILENT, Progress, on_main
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.jobs.skeleton import run_fingerprint, train_then_save, training_run
from bmtpt_cli.source.svgd import SourceConfig, StepRecord, train_source


@dataclass(frozen=True)
class SourceJob:
    """Everything a source run needs; `settings` is the resolved configuration recorded in the artifact.

    `per_task`: train one prompt per task (one particle, that task alone) into the directory
    `output.out` instead of one posterior over all the tasks.
    """

    tasks: list[str]
    per_task: bool
    runner: RunnerConfig
    data: DataConfig
    svgd: SourceConfig
    output: RunOutput
    settings: dict
    report_to: str = "none"  # --report-to: the step records also go to csv, tensorboard, mlflow or wandb
    keep_checkpoint: bool = False  # keep the final checkpoint, so --resume --steps N can extend the run


def run_source(job: SourceJob, progress: Progress = SILENT) -> Path:
    """Train the particles and write them to `job.output.out` (main process); returns that path.

    Checks come before anything heavy: the output lock (one run per output), the output files, then
    the task data, and only then the model. With `job.per_task`: `run_per_task`.
    """
    if job.per_task:
        return run_per_task(job, progress)
    tasks = resolve_tasks(job.tasks)
    output = job.output
    with training_run(output, job.runner) as (dist, device):
        train_by_task = job.data.by_task(tasks, "train")  # data problems show before the model loads
        svgd = job.svgd
        per_step = svgd.examples_per_task * (svgd.sample_tasks or len(tasks))
        check_batch_within_data(per_step, {name: len(examples) for name, examples in train_by_task.items()},
                                setting="--examples-per-task", value=svgd.examples_per_task, per_unit=per_step // svgd.examples_per_task)
        runner = load_runner(job.runner, device, progress)
        check_step_fits(  # before the particles and their optimizer state exist
            runner, [e for examples in train_by_task.values() for e in examples[:500]],
            sequences=svgd.particles * per_step, prompt_length=svgd.prompt_length,
            trainable_elements=svgd.particles * svgd.prompt_length * runner.d_model, particles=svgd.particles,
            what=f"{svgd.particles:,} particles × {per_step} sequences of {{length}} tokens",
            lower="--particles or --examples-per-task (or pass --grad-checkpointing)",
            host_examples=per_step, setting=("--examples-per-task", svgd.examples_per_task, per_step // svgd.examples_per_task),
        )
        fingerprint = run_fingerprint(job.svgd.fingerprint(), job.runner, job.data, [task.name for task in tasks],
                                      train_by_task, evaluates=False)

        def train(files: RunFiles, update) -> torch.Tensor:
            def show(record: StepRecord) -> None:
                update(record.step, f"loss {record.loss:.4f} · kernel bandwidth h {record.bandwidth:.3g} · "
                                    f"mean particle distance {record.mean_distance:.3g}")

            return train_source(runner, train_by_task, job.svgd, files=files, on_start=update, on_step=show, dist=dist)

        def save(particles: torch.Tensor) -> None:
            metadata = common_metadata(
                kind=PARTICLES, model=job.runner.model, d_model=runner.d_model,
                prompt_length=job.svgd.prompt_length, config=job.settings,
            )
            metadata |= {
                "bmtpt.provenance": json.dumps(provenance(device), sort_keys=True),
                "bmtpt.data": json.dumps(job.data.provenance(tasks), sort_keys=True),
            }
            save_particles(output.out, particles, tasks=[task.name for task in tasks], metadata=metadata)

        train_then_save(output, dist=dist, progress=on_main(progress, dist.is_main), label="source", steps=job.svgd.steps,
                        fingerprint=fingerprint, report_to=job.report_to, settings=job.settings, train=train, save=save,
                        keep_checkpoint=job.keep_checkpoint)
    return output.out


# ----------------------------------------------------------------------------- one prompt per task
PER_TASK_LOCK = ".source-per-task"  # the directory's lock is DIR/.source-per-task.lock


def check_per_task_directory(output: RunOutput) -> None:
    """Refuse a per-task output directory that is a file, sits in a missing folder, already holds
    files without --force or --resume, or is missing with --resume."""
    directory = Path(output.out)
    if directory.exists() and not directory.is_dir():
        raise BmtptError(f"'{directory}' is a file: --per-task writes a directory of task prompts; choose another --out")
    check_output_directory(directory)
    if output.resume and not directory.is_dir():
        raise BmtptError(f"--resume given but '{directory}' does not exist: run without --resume to start fresh")
    if directory.is_dir() and any(directory.iterdir()) and not (output.force or output.resume):
        raise BmtptError(
            f"'{directory}' already holds files: pass --resume to keep its finished task prompts and train the rest, "
            "--force to train every task again, or choose another --out"
        )


def run_per_task(job: SourceJob, progress: Progress = SILENT) -> Path:
    """One prompt per source task, each through `train_source` with one particle on that task alone
    and the same seed (so each equals a single-task `source --particles 1` run), written as a
    prompts artifact `DIR/<task>.safetensors` (shared = the prompt, a = 1, b = 1) with its
    checkpoint and step log beside it. With `resume`, finished tasks are kept (their settings are
    checked) and an unfinished task continues from its checkpoint. Returns the directory."""
    if job.svgd.particles != 1 or job.svgd.sample_tasks is not None:
        raise BmtptError("--per-task trains one particle on one task at a time: pass --particles 1 and no --sample-tasks")
    if job.keep_checkpoint:
        raise BmtptError("--keep-checkpoint keeps one run's final checkpoint to extend it; --per-task runs cannot be extended: drop --keep-checkpoint")
    tasks = resolve_tasks(job.tasks)
    directory = Path(job.output.out)
    with data_parallel(resolve_device(job.runner.device)) as (dist, device):
        if dist.is_main:
            check_per_task_directory(job.output)
        train_by_task = job.data.by_task(tasks, "train")  # data problems show before anything is written
        for task in tasks:  # each task alone: no step may draw more examples than its task holds
            check_batch_within_data(job.svgd.examples_per_task, {task.name: len(train_by_task[task.name])},
                                    setting="--examples-per-task", value=job.svgd.examples_per_task)
        if dist.is_main:
            directory.mkdir(exist_ok=True)
        with main_process_lock(directory / PER_TASK_LOCK, dist.is_main):
            outputs = {task.name: _task_output(job, task) for task in tasks}
            fingerprints = {task.name: _task_fingerprint(job, task, train_by_task[task.name]) for task in tasks}
            shown = on_main(progress, dist.is_main)
            todo = []
            for number, task in enumerate(tasks, 1):
                output = outputs[task.name]
                if job.output.resume and output.out.is_file():  # finished: keep it, if made with these settings
                    saved = metadata_json(load_prompts(output.out, flag="--out").metadata, "bmtpt.fingerprint", output.out)
                    # a lower learning rate is allowed, as for a checkpoint: the way on after a divergence
                    check_fingerprint(output.out, saved, fingerprints[task.name], lowerable=LOWERABLE)
                    shown.note(f"{task.name} [{number}/{len(tasks)}]: kept the finished '{output.out}' (--resume)")
                else:
                    output.check()
                    todo.append((number, task))
            if not todo:
                return directory
            runner = load_runner(job.runner, device, progress)
            check_step_fits(
                runner, [e for task in tasks for e in train_by_task[task.name][:500]],
                sequences=job.svgd.examples_per_task, prompt_length=job.svgd.prompt_length,
                trainable_elements=job.svgd.prompt_length * runner.d_model, particles=1,
                what=f"{job.svgd.examples_per_task} sequences of {{length}} tokens",
                lower="--examples-per-task (or pass --grad-checkpointing)",
                host_examples=job.svgd.examples_per_task, setting=("--examples-per-task", job.svgd.examples_per_task, 1),
            )
            for number, task in todo:
                output = outputs[task.name]

                def train(files: RunFiles, update, task=task) -> torch.Tensor:
                    (prompt,) = train_source(  # (1, l, d) → (l, d)
                        runner, {task.name: train_by_task[task.name]}, job.svgd, files=files, on_start=update,
                        on_step=lambda record: update(record.step, f"loss {record.loss:.4f}"), dist=dist,
                    )
                    return prompt

                def save(prompt: torch.Tensor, task=task) -> None:
                    _save_task_prompt(job, task, prompt, runner.d_model, fingerprints[task.name], device)

                train_then_save(output, dist=dist, progress=shown, label=f"source {task.name} [{number}/{len(tasks)}]",
                                steps=job.svgd.steps, fingerprint=fingerprints[task.name], report_to=job.report_to,
                                settings=job.settings, train=train, save=save)
    return directory


def _task_output(job: SourceJob, task: Task) -> RunOutput:
    """One task's file in the directory; it resumes when --resume finds its checkpoint."""
    out = task_prompt_path(job.output.out, task.name)
    resume = job.output.resume and RunOutput(out, False, False).checkpoint.is_file()
    return RunOutput(out, force=job.output.force, resume=resume)


def _task_fingerprint(job: SourceJob, task: Task, train: list) -> dict:
    """What a task's prompt depends on: the source config, model, that one task, data and runner."""
    return run_fingerprint(job.svgd.fingerprint(), job.runner, job.data, [task.name], {task.name: train}, evaluates=False)


def _save_task_prompt(job: SourceJob, task: Task, prompt: torch.Tensor, d_model: int, fingerprint: dict, device) -> None:
    """Write a task's prompt `(l, d)` as a prompts artifact that composes to exactly that prompt."""
    length = prompt.shape[0]
    metadata = common_metadata(kind=PROMPTS, model=job.runner.model, d_model=d_model, prompt_length=length, config=job.settings)
    metadata |= {
        "bmtpt.method": "source --per-task",
        "bmtpt.init": "random",  # a vocabulary draw from the seed (SPEC §2 initialisation)
        "bmtpt.init_sha256": "",
        "bmtpt.fingerprint": json.dumps(fingerprint, sort_keys=True),
        "bmtpt.provenance": json.dumps(provenance(device), sort_keys=True),
        "bmtpt.data": json.dumps(job.data.provenance([task]), sort_keys=True),
    }
    ones = (torch.ones(length), torch.ones(prompt.shape[1]))  # a = 1^l, b = 1^d: W ⊙ a bᵀ = W
    save_prompts(task_prompt_path(job.output.out, task.name), prompt, {task.name: ones}, metadata=metadata)
