"""`bmtpt project` as one function (SPEC §5f): an artifact of one model → a trained (or saved)
projector → the same artifact for another model, with the projector beside it.

    read --prompts (particles, prompts, per-task directory) → check the output → train the projector
    (task: the target model's loss; distance: the two models' prompts of the same tasks) or read
    --projector → project every prompt with it → write the projector, then the projected artifact.

The projector file is the training run's output: its checkpoint and step log go beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli.adapter.projection import ProjectorConfig, ProjectorStepRecord, train_on_distance, train_on_tasks
from bmtpt_cli.adapter.projector import PromptProjector, new_projector, projector_from_file
from bmtpt_cli.artifacts import PARTICLES, PROMPTS, common_metadata, file_sha256, save_particles, save_prompts
from bmtpt_cli.artifacts.projector import ProjectorFile, ProjectorSpec, load_projector, save_projector
from bmtpt_cli.artifacts.task_prompts import task_prompt_path
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.data.vocabulary import check_label_words
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.jobs.project_inputs import (
    DistancePairs, SourceArtifact, check_projector_fits, read_distance_pairs, read_source_artifact, same_model,
)
from bmtpt_cli.jobs.skeleton import run_fingerprint, train_then_save, training_run
from bmtpt_cli.runner.load import RunnerConfig, check_step_fits, load_runner
from bmtpt_cli.runtime.distributed import is_main_process
from bmtpt_cli.runtime.files import check_replaceable_directory, check_writable, main_process_lock, side_file, staged_directory
from bmtpt_cli.runtime.memory import check_batch_within_data
from bmtpt_cli.runtime.outputs import RunOutput, check_not_an_input
from bmtpt_cli.runtime.progress import SILENT, Progress, on_main
from bmtpt_cli.runtime.provenance import provenance

PROJECTOR_SUFFIX = ".projector.safetensors"
"""The projector a run trains goes beside its output: OUT + this suffix."""
FILE_OUT, DIRECTORY_OUT = Path("projected.safetensors"), Path("projected-prompts")
"""The default --out: a file for a particles or one-task prompts file, a directory otherwise."""


@dataclass(frozen=True)
class ProjectJob:
    """Everything a projection needs; `settings` is the resolved configuration recorded in the outputs.

    `target_named`: whether the user named the target model (`runner.model`); with `projector` and
    no target named, the projector's own target is used.
    """

    prompts: Path
    objective: str  # task | distance
    projector: Path | None  # a saved projector to apply instead of training one
    tasks: list[str] | None  # task objective: the training tasks (None: the artifact's)
    source_prompts: Path | None  # distance objective: per-task prompts of the source model
    target_prompts: Path | None  # distance objective: per-task prompts of the target model
    hidden: int
    activation: str
    target_named: bool
    runner: RunnerConfig
    data: DataConfig
    training: ProjectorConfig
    out: Path | None  # None: FILE_OUT or DIRECTORY_OUT, after the kind of --prompts
    force: bool
    resume: bool
    settings: dict
    report_to: str = "none"


@dataclass
class ProjectResult:
    """What a projection wrote, and how its projector was made."""

    out: Path
    projector: Path
    trained: bool  # False: a saved projector was applied
    objective: str
    tasks: list[str]  # the projector's training tasks
    loss: float | None = None  # the last training step's loss (None: applied, or no step left on resume)


def projector_path(out: Path) -> Path:
    """Where a run writes the projector it trains: beside the output, OUT.projector.safetensors."""
    return side_file(out, PROJECTOR_SUFFIX)


def run_project(job: ProjectJob, progress: Progress = SILENT) -> ProjectResult:
    """Move `job.prompts` to the target model through a projector trained here (or `job.projector`)."""
    artifact = read_source_artifact(job.prompts)
    saved = load_projector(job.projector) if job.projector is not None else None
    if saved is not None:
        check_projector_fits(saved, artifact, job.runner.model if job.target_named else None)
    elif not job.target_named:
        raise BmtptError("bmtpt project needs the target model: pass --model NAME (the model the prompts move to)")
    elif same_model(artifact.model, job.runner.model):
        raise BmtptError(
            f"'{artifact.path}' was made with {artifact.model}, the model --model names: a projector moves prompts to "
            "another model, so none is needed; pass the artifact to adapt --init or evaluate --prompts as it is, or "
            "name another --model"
        )
    pairs = None
    if saved is None and job.objective == "distance":
        if job.source_prompts is None or job.target_prompts is None:
            raise BmtptError("--objective distance pairs the two models' per-task prompts: pass --source-prompts DIR and --target-prompts DIR")
        pairs = read_distance_pairs(job.source_prompts, job.target_prompts, artifact, job.runner.model)
    out = Path(job.out) if job.out is not None else (DIRECTORY_OUT if artifact.writes_directory else FILE_OUT)
    check_output(job, artifact, out)
    lock = out.with_name(f".{out.name}.run") if artifact.writes_directory else out  # a lock file, never a folder
    with main_process_lock(lock, is_main_process()):
        if saved is not None:
            return apply_saved(job, artifact, out, saved, progress)
        if pairs is not None:
            return train_by_distance(job, artifact, pairs, out, progress)
        return train_by_task(job, artifact, out, progress)


def check_output(job: ProjectJob, artifact: SourceArtifact, out: Path) -> None:
    """Refuse, before anything is trained, an output (or the projector to be written beside it) that is
    an input, an output of the wrong kind (a file where a directory is written), or one existing without
    --force (the projector's own file and checkpoint: the training run's `RunOutput.check`)."""
    inputs = {"--prompts": job.prompts}
    inputs |= {flag: path for flag, path in (("--projector", job.projector), ("--source-prompts", job.source_prompts),
                                              ("--target-prompts", job.target_prompts)) if path is not None}
    check_not_an_input(out, inputs, replaces_directory=artifact.writes_directory)
    if artifact.writes_directory:
        if out.suffix == ".safetensors":
            raise BmtptError(
                f"'{artifact.path}' holds one prompt per task ({', '.join(artifact.tasks)}), which project to a directory of "
                f"per-task prompts files, but --out '{out}' names a file: give --out a directory name"
            )
        check_replaceable_directory(out, force=job.force)
    else:
        check_writable(out, force=job.force)
    if job.projector is None:
        check_not_an_input(projector_path(out), inputs)


# ----------------------------------------------------------------------------- applying a saved projector
def apply_saved(job: ProjectJob, artifact: SourceArtifact, out: Path, saved: ProjectorFile, progress: Progress) -> ProjectResult:
    """Project the artifact with the saved projector of `job.projector`; nothing is trained."""
    projector = projector_from_file(saved)
    if is_main_process():
        progress.note(f"projecting with '{saved.path}' ({saved.spec.source_model} → {saved.spec.target_model}, "
                      f"trained by {saved.objective} on {', '.join(saved.tasks)})")
        write_projection(job, artifact, out, projector, saved.path, objective=saved.objective, tasks=saved.tasks,
                         device="cpu")
    return ProjectResult(out, Path(job.projector), False, saved.objective, saved.tasks)


# ----------------------------------------------------------------------------- training: task tuning
def train_by_task(job: ProjectJob, artifact: SourceArtifact, out: Path, progress: Progress) -> ProjectResult:
    """Train the projector through the frozen target model on the training tasks' loss, then write."""
    if not (job.tasks or artifact.tasks):
        raise BmtptError(f"'{artifact.path}' records no tasks: pass --tasks to name the tasks whose loss trains the projector")
    tasks = resolve_tasks(job.tasks or artifact.tasks)
    names = [task.name for task in tasks]
    serves = artifact.serves(names)
    per_example = len(next(iter(serves.values())))  # sequences per example: M particles, or the task's own prompt
    output = RunOutput(projector_path(out), force=job.force, resume=job.resume)
    config = job.training
    with training_run(output, job.runner) as (dist, device):
        examples = job.data.by_task(tasks, "train")  # data problems show before the model loads
        check_batch_within_data(config.batch_size, {name: len(rows) for name, rows in examples.items()},
                                setting="--batch-size", value=config.batch_size)
        runner = load_runner(job.runner, device, progress)
        for task in tasks:
            check_label_words(runner.tokenizer, task, job.data.label_style)
        spec = ProjectorSpec(artifact.model, job.runner.model, artifact.length, artifact.width, runner.d_model,
                             job.hidden, job.activation)
        projector = new_projector(spec, config.seed)
        check_step_fits(
            runner, [e for rows in examples.values() for e in rows[:500]],
            sequences=config.batch_size * per_example, prompt_length=spec.prompt_length,
            trainable_elements=sum(p.numel() for p in projector.parameters()),
            what=f"batches of {config.batch_size * per_example} sequences of {{length}} tokens",
            lower="--batch-size or --hidden (or pass --grad-checkpointing)",
            host_examples=config.batch_size * per_example, setting=("--batch-size", config.batch_size, per_example),
        )
        fingerprint = run_fingerprint(
            config.fingerprint(), job.runner, job.data, names, examples, evaluates=False, objective="task",
            hidden=job.hidden, activation=job.activation, source_model=artifact.model, input_sha256=artifact.sha256,
        )
        last: dict[str, float] = {}

        def train(files, update) -> PromptProjector:
            def show(record: ProjectorStepRecord) -> None:
                last["loss"] = record.loss
                update(record.step, f"loss {record.loss:.4f}")

            return train_on_tasks(runner, projector, artifact.prompts, serves, examples, config, files=files,
                                  on_start=update, on_step=show, dist=dist)

        def save(trained: PromptProjector) -> None:
            save_trained(job, artifact, out, trained, objective="task", tasks=names, trained_from={
                "prompts": str(artifact.path), "sha256": artifact.sha256}, device=device, loss=last.get("loss"))

        train_then_save(output, dist=dist, progress=on_main(progress, dist.is_main), label="project", steps=config.steps,
                        fingerprint=fingerprint, report_to=job.report_to, settings=job.settings, train=train, save=save)
    return ProjectResult(out, output.out, True, "task", names, last.get("loss"))


# ----------------------------------------------------------------------------- training: distance minimizing
def train_by_distance(job: ProjectJob, artifact: SourceArtifact, pairs: DistancePairs, out: Path,
                      progress: Progress) -> ProjectResult:
    """Train the projector to map the source model's per-task prompts onto the target model's (`pairs`), then write."""
    spec = ProjectorSpec(artifact.model, job.runner.model, artifact.length, artifact.width, pairs.targets.shape[2],
                         job.hidden, job.activation)
    output = RunOutput(projector_path(out), force=job.force, resume=job.resume)
    config = job.training
    with training_run(output, job.runner) as (dist, device):
        projector = new_projector(spec, config.seed).to(device)
        fingerprint = {
            **config.fingerprint(), "objective": "distance", "hidden": job.hidden, "activation": job.activation,
            "source_model": artifact.model, "model": job.runner.model, "tasks": pairs.tasks, "pairs_sha256": pairs.sha256,
        }
        last: dict[str, float] = {}

        def train(files, update) -> PromptProjector:
            def show(record: ProjectorStepRecord) -> None:
                last["loss"] = record.loss
                update(record.step, f"squared distance {record.loss:.4g}")

            return train_on_distance(projector, pairs.sources, pairs.targets, config, files=files, on_start=update,
                                     on_step=show, dist=dist)

        def save(trained: PromptProjector) -> None:
            save_trained(job, artifact, out, trained, objective="distance", tasks=pairs.tasks, trained_from={
                "source_prompts": str(job.source_prompts), "target_prompts": str(job.target_prompts),
                "sha256": pairs.sha256}, device=device, loss=last.get("loss"))

        train_then_save(output, dist=dist, progress=on_main(progress, dist.is_main), label="project", steps=config.steps,
                        fingerprint=fingerprint, report_to=job.report_to, settings=job.settings, train=train, save=save)
    return ProjectResult(out, output.out, True, "distance", pairs.tasks, last.get("loss"))


# ----------------------------------------------------------------------------- writing
def save_trained(job: ProjectJob, artifact: SourceArtifact, out: Path, projector: PromptProjector, *, objective: str,
                 tasks: list[str], trained_from: dict, device, loss: float | None) -> None:
    """Write the trained projector beside `out` (with what it maps and how it was trained), then the projection."""
    path = projector_path(out)
    metadata = {
        "bmtpt.objective": objective, "bmtpt.tasks": ",".join(tasks), "bmtpt.steps": str(job.training.steps),
        "bmtpt.config": json.dumps(job.settings, sort_keys=True, default=str),
        "bmtpt.trained_from": json.dumps(trained_from, sort_keys=True),
        "bmtpt.provenance": json.dumps(provenance(device), sort_keys=True),
        **({"bmtpt.final_loss": repr(loss)} if loss is not None else {}),
    }
    save_projector(path, projector.tensors(), projector.spec, metadata=metadata)
    write_projection(job, artifact, out, projector, path, objective=objective, tasks=tasks, device=device)


def write_projection(job: ProjectJob, artifact: SourceArtifact, out: Path, projector: PromptProjector, saved_at: Path, *,
                     objective: str, tasks: list[str], device) -> None:
    """Project every prompt of the artifact with the one projector and write the result for the target
    model: particles → particles, a one-task prompts file → a prompts file (W = the projected prompt,
    a = b = 1), per-task prompts (a directory, or a multi-task file) → a directory of per-task files."""
    spec = projector.spec
    projected = projector.project(artifact.prompts)  # (P, l, d_tgt)
    metadata = common_metadata(
        kind=PARTICLES if artifact.kind == PARTICLES else PROMPTS, model=spec.target_model, d_model=spec.d_target,
        prompt_length=spec.prompt_length, config={**job.settings, "model": spec.target_model},
    )
    metadata |= {
        "bmtpt.source_model": artifact.model, "bmtpt.source_d_model": str(spec.d_source),
        "bmtpt.projected_from": str(artifact.path), "bmtpt.projected_from_sha256": json.dumps(artifact.sha256, sort_keys=True),
        "bmtpt.projector": str(saved_at), "bmtpt.projector_sha256": file_sha256(saved_at),
        "bmtpt.projector_objective": objective, "bmtpt.projector_tasks": ",".join(tasks),
        "bmtpt.provenance": json.dumps(provenance(device), sort_keys=True),
    }
    if artifact.kind == PARTICLES:
        save_particles(out, projected, tasks=artifact.tasks, metadata=metadata)
        return

    def one_task(path: Path, k: int) -> None:
        task = artifact.tasks[k]
        source = artifact.files[task]
        details = {"bmtpt.method": "project", "bmtpt.init": str(source), "bmtpt.init_sha256": artifact.sha256[source.name],
                   "bmtpt.init_details": json.dumps({"task": task, "projector": str(saved_at)}, sort_keys=True)}
        ones = (torch.ones(spec.prompt_length), torch.ones(spec.d_target))  # a = 1^l, b = 1^d: W ⊙ a bᵀ = W
        save_prompts(path, projected[k], {task: ones}, metadata={**metadata, **details})

    if not artifact.writes_directory:
        one_task(out, 0)
        return
    with staged_directory(out, force=job.force) as staging:
        for k, task in enumerate(artifact.tasks):
            one_task(task_prompt_path(staging, task), k)
