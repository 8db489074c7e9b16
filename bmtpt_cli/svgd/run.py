"""`bmtpt source` as one function: source tasks → frozen T5 → Damped SVGD → particles.safetensors."""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.runner.load import RunnerConfig, check_step_fits, load_runner
from bmtpt_cli.runner.model import resolve_device
from bmtpt_cli.runtime.distributed import data_parallel
from bmtpt_cli.runtime.files import main_process_lock
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.runtime.outputs import RunOutput
from bmtpt_cli.runtime.progress import SILENT, Progress, on_main
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.svgd.train import SourceConfig, StepRecord, train_source


@dataclass(frozen=True)
class SourceJob:
    """Everything a source run needs; `settings` is the resolved configuration recorded in the artifact."""

    tasks: list[str]
    runner: RunnerConfig
    data: DataConfig
    svgd: SourceConfig
    output: RunOutput
    settings: dict


def run_source(job: SourceJob, progress: Progress = SILENT) -> Path:
    """Train the particles and write them to `job.output.out` (main process); returns that path.

    Checks come before anything heavy: the output lock (one run per output), the output files, then
    the task data, and only then the model.
    """
    tasks = resolve_tasks(job.tasks)
    output = job.output
    with data_parallel(resolve_device(job.runner.device)) as (dist, device), main_process_lock(output.out, dist.is_main):
        output.check()
        train_by_task = job.data.by_task(tasks, "train")  # data problems show before the model loads
        runner = load_runner(job.runner, device, progress)
        svgd = job.svgd
        per_step = svgd.examples_per_task * (svgd.sample_tasks or len(tasks))
        check_step_fits(  # before the particles and their optimizer state exist
            runner, [e for examples in train_by_task.values() for e in examples[:500]],
            sequences=svgd.particles * per_step, prompt_length=svgd.prompt_length,
            trainable_elements=svgd.particles * svgd.prompt_length * runner.d_model, particles=svgd.particles,
            what=f"{svgd.particles:,} particles × {per_step} sequences of {{length}} tokens",
            lower="--particles or --examples-per-task (or pass --grad-checkpointing)",
        )
        fingerprint = {
            **job.svgd.fingerprint(),
            "model": job.runner.model,
            "tasks": [task.name for task in tasks],
            **job.data.fingerprint(),
            **job.runner.fingerprint(),
        }
        with on_main(progress, dist.is_main).bar("source", job.svgd.steps) as update:

            def show(record: StepRecord) -> None:
                update(record.step, f"loss {record.loss:.4f} · kernel bandwidth h {record.bandwidth:.3g} · "
                                    f"mean particle distance {record.mean_distance:.3g}")

            particles = train_source(
                runner, train_by_task, job.svgd,
                files=RunFiles(output.checkpoint, output.log, output.resume, fingerprint),
                on_start=update, on_step=show, dist=dist,
            )
        if dist.is_main:
            metadata = common_metadata(
                kind=PARTICLES, model=job.runner.model, d_model=runner.d_model,
                prompt_length=job.svgd.prompt_length, config=job.settings,
            )
            metadata |= {
                "bmtpt.provenance": json.dumps(provenance(device), sort_keys=True),
                "bmtpt.data": json.dumps(job.data.provenance(tasks), sort_keys=True),
            }
            save_particles(output.out, particles, tasks=[task.name for task in tasks], metadata=metadata)
            output.checkpoint.unlink(missing_ok=True)  # the run is complete: its artifact replaces the checkpoint
    return output.out
