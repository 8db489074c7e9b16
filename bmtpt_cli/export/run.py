"""`bmtpt export` as one function: prompts.safetensors → PEFT adapters or plain tensors, with model cards.

Layouts of `--out DIR` (SPEC §8):
- `peft`: `DIR/<task>/` per task (adapter_config.json, adapter_model.safetensors, README.md) and
  `DIR/README.md` covering them all;
- `peft --multitask`: `DIR/` is one multitask adapter, with `task_ids.json` (task → id) beside it;
- `safetensors`: `DIR/<task>.safetensors` per task and `DIR/README.md`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli import __version__
from bmtpt_cli.artifacts.native import PARTICLES, PromptArtifact, file_sha256, load_prompts, metadata_json, read_kind
from bmtpt_cli.errors import BmtptError, excerpt
from bmtpt_cli.export.card import CardFacts, command_line, model_card, recorded_command
from bmtpt_cli.methods.registry import method_of_artifact
from bmtpt_cli.runtime.files import check_replaceable_directory, staged_directory
from bmtpt_cli.export.peft import (
    BaseModelShape,
    multitask_config,
    multitask_tensors,
    prompt_tuning_config,
    prompt_tuning_tensors,
    write_adapter,
)
from bmtpt_cli.export.tensors import composed_prompt_path, write_composed_prompt
from bmtpt_cli.runtime.files import write_text_atomic
from bmtpt_cli.runner.model import check_recorded_model
from bmtpt_cli.runtime.progress import SILENT, Progress

CARD_FILE = "README.md"
TASK_IDS_FILE = "task_ids.json"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a file name on every system
JSON_METADATA = ("bmtpt.config", "bmtpt.data", "bmtpt.dev_metrics", "bmtpt.dev_metric_names", "bmtpt.provenance")
"""The metadata values the card reads as JSON objects."""


@dataclass(frozen=True)
class ExportJob:
    """What to export, how and where.

    `base_model`: the `base_model_name_or_path` to record instead of the model the prompts were
    trained on (e.g. the hub id of a local checkout); it must have the same width.
    `settings_by_command`: each bmtpt command's setting names, to name the command whose recorded
    settings the prompts file holds (the card gives them as a preset that repeats the run).
    """

    prompts: Path
    format: str  # peft | safetensors
    tasks: list[str] | None  # None: every task of the prompts file
    multitask: bool
    out: Path
    force: bool
    base_model: str | None
    settings_by_command: dict[str, frozenset[str]]


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: files relative to `out`, the tasks in order, and (multitask) their ids."""

    out: Path
    layout: str
    base_model: str
    tasks: list[str]
    task_ids: dict[str, int] | None
    files: list[str]


def run_export(job: ExportJob, progress: Progress = SILENT) -> ExportReport:
    """Export the prompts file's tasks in the asked format into `job.out` (written whole or not at all)."""
    artifact = read_prompts(job.prompts)
    tasks = select_tasks(artifact, job.tasks, job.prompts)
    method = method_of_artifact(artifact.metadata)
    if not method.export_formats:
        raise BmtptError(f"'{job.prompts}' holds method {method.name}'s prompts, which no serving format holds (PEFT has "
                         "no such adapter): use them with bmtpt evaluate")
    if job.format not in method.export_formats:
        raise BmtptError(f"'{job.prompts}' holds method {method.name}'s prompts, which export as "
                         f"{' or '.join(method.export_formats)}, not --format {job.format}: choose one of those")
    if artifact.members and job.multitask:
        raise BmtptError(f"'{job.prompts}' holds an ensemble of {artifact.members} members (method {method.name}), whose "
                         "members' mean prompt has no shared W ⊙ a_k b_kᵀ form: drop --multitask to export each task's mean prompt")
    check_replaceable_directory(job.out, force=job.force)
    if Path(job.out).resolve() in Path(job.prompts).resolve().parents:
        raise BmtptError(f"--prompts '{job.prompts}' is inside --out '{job.out}', which the export replaces: choose another --out")
    name = job.base_model or check_recorded_model(artifact.metadata.get("bmtpt.model", ""), job.prompts)
    with progress.status(f"reading the configuration of {name} …"):
        model = base_model_shape(name, artifact, job.prompts, given=job.base_model is not None)
    layout = "safetensors" if job.format == "safetensors" else "peft-multitask" if job.multitask else "peft"
    task_ids = {task: k for k, task in enumerate(tasks)} if layout == "peft-multitask" else None
    facts = CardFacts(
        base_model=model.name, layout=layout, tasks=tasks, locations=_locations(job.out, layout, tasks),
        task_ids=task_ids, source=str(job.prompts), source_sha256=file_sha256(job.prompts), metadata=artifact.metadata,
        made_by=_made_by(artifact.metadata, job.settings_by_command), exported_with=export_command_line(job),
        formats=task_formats(tasks, artifact.metadata),
    )
    metadata = {
        "bmtpt.model": model.name,
        "bmtpt.exported_from": Path(job.prompts).name,
        "bmtpt.exported_from_sha256": facts.source_sha256,
        "bmtpt.version": __version__,
    }
    if artifact.members:
        progress.note(f"warning: exporting the mean of the ensemble's {artifact.members} members' prompts, which is not "
                      "the ensemble (it averages its members' predictions): score the ensemble itself with bmtpt evaluate")
    with staged_directory(job.out, force=job.force) as staging:
        _write(staging, layout, artifact, tasks, model, metadata, facts)
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    return ExportReport(job.out, layout, model.name, tasks, task_ids, files)


def read_prompts(path: Path) -> PromptArtifact:
    """The prompts file to export; a particles file is refused with the step that makes prompts from it."""
    if Path(path).is_file() and read_kind(path) == PARTICLES:
        raise BmtptError(
            f"'{path}' holds source particles, not target prompts: adapt them first (`bmtpt adapt --init {path}`) "
            "and export the prompts file that writes"
        )
    artifact = load_prompts(path, flag="--prompts")
    for key in JSON_METADATA:  # read once within bounds here, so the card's reading cannot fail
        metadata_json(artifact.metadata, key, path)
    return artifact


def select_tasks(artifact: PromptArtifact, wanted: list[str] | None, path: Path) -> list[str]:
    """The tasks to export, in the order asked (default: the file's order); each must be in the file."""
    tasks = list(wanted) if wanted else artifact.tasks
    unknown = [task for task in tasks if task not in artifact.scales]
    if unknown:
        raise BmtptError(
            f"task{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} not in '{path}', which holds "
            f"{', '.join(artifact.tasks)}: pass --tasks with some of those, or leave --tasks out to export all"
        )
    repeated = sorted({task for task in tasks if tasks.count(task) > 1})
    if repeated:
        raise BmtptError(f"--tasks names {', '.join(repeated)} more than once: give each task once")
    for task in tasks:
        if not SAFE_NAME.fullmatch(task):
            raise BmtptError(f"task name {excerpt(task)} in '{path}' cannot be a file name: re-create the prompts with a plain task name")
    return tasks


def base_model_shape(name: str, artifact: PromptArtifact, path: Path, *, given: bool = False) -> BaseModelShape:
    """Width, layers and heads of the base model from its configuration (no weights), checked against the prompts.

    `given`: the name came from --model (else from the prompts file's metadata).
    """
    from bmtpt_cli.runner.model import model_config

    config = model_config(name)
    if not getattr(config, "is_encoder_decoder", False):
        raise BmtptError(f"model '{name}' is not an encoder-decoder (T5) model: pass the T5 checkpoint the prompts were trained for with --model")
    width = artifact.shared.shape[1]
    if config.hidden_size != width:
        fix = f"drop --model or pass a model of width {width}" if given else f"pass --model with the model of width {width} they were trained for"
        raise BmtptError(
            f"model '{name}' has d_model={config.hidden_size}, the prompts in '{path}' have width {width} (recorded "
            f"model: {excerpt(artifact.metadata.get('bmtpt.model'))}): {fix}"
        )
    return BaseModelShape(name, width, config.num_hidden_layers, config.num_attention_heads)


def export_command_line(job: ExportJob) -> str:
    """The `bmtpt export` command line that repeats this export."""
    config = {"prompts": str(job.prompts), "format": job.format, "tasks": job.tasks, "out": str(job.out)}
    if job.multitask:
        config["multitask"] = True
    if job.base_model:
        config["model"] = job.base_model
    return command_line("export", config)


def task_formats(tasks: list[str], metadata: dict[str, str]) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """Each known task's input template (fields as `…`) and targets, as the prompts were trained (SPEC §7)."""
    from bmtpt_cli.data.registry import TASKS

    data = metadata_json(metadata, "bmtpt.data", "--prompts")
    taskless = bool(data.get("taskless", False))
    label_style = "digits" if data.get("label_style") == "digits" else "words"
    formats = {}
    for name in tasks:
        task = TASKS.get(name)
        if task is None:
            continue  # made from data this bmtpt does not know: the card says so
        try:
            example = task.format({**{field: "…" for field in task.input_fields}, "label": 0}, taskless=taskless, label_style=label_style)
        except BmtptError:
            continue
        formats[name] = (example.source, task.verbalisers(label_style))
    return formats


def _made_by(metadata: dict[str, str], settings_by_command: dict[str, frozenset[str]]) -> str | None:
    config = metadata_json(metadata, "bmtpt.config", "--prompts")
    if not config:
        return None
    return recorded_command(config, settings_by_command)


def _locations(out: Path, layout: str, tasks: list[str]) -> dict[str, str]:
    """Where each task's adapter or file will be, as the user named --out (for the card's snippets)."""
    if layout == "peft-multitask":
        return {task: str(out) for task in tasks}
    if layout == "peft":
        return {task: str(Path(out) / task) for task in tasks}
    return {task: str(composed_prompt_path(out, task)) for task in tasks}


def _write(staging: Path, layout: str, artifact: PromptArtifact, tasks: list[str], model: BaseModelShape,
           metadata: dict[str, str], facts: CardFacts) -> None:
    length = artifact.shared.shape[0]
    if layout == "peft-multitask":
        tensors = multitask_tensors(artifact.shared, [artifact.scales[task] for task in tasks])
        write_adapter(staging, multitask_config(model, length, len(tasks)), tensors, {**metadata, "bmtpt.tasks": ",".join(tasks)})
        write_text_atomic(staging / TASK_IDS_FILE, json.dumps(facts.task_ids, indent=2) + "\n")
    elif layout == "peft":
        for task in tasks:
            directory = staging / task
            directory.mkdir()
            write_adapter(directory, prompt_tuning_config(model, length), prompt_tuning_tensors(artifact.prompt(task)),
                          {**metadata, "bmtpt.tasks": task})
            write_text_atomic(directory / CARD_FILE, model_card(facts, [task]))
    else:
        for task in tasks:
            write_composed_prompt(composed_prompt_path(staging, task), task, artifact.prompt(task), metadata)
    write_text_atomic(staging / CARD_FILE, model_card(facts))


def describe(report: ExportReport) -> list[str]:
    """One line per task: where its export is (for the command's output)."""
    locations = _locations(report.out, report.layout, report.tasks)
    if report.task_ids is not None:
        return [f"{task}: task_ids={report.task_ids[task]} in {locations[task]}" for task in report.tasks]
    return [f"{task}: {locations[task]}" for task in report.tasks]

