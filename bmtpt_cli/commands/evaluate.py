"""`bmtpt evaluate`: test metrics of target prompts, or the few-shot probe with --shots."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Annotated, Optional

import typer

from bmtpt_cli.commands.common import (
    BatchSize,
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
    Model,
    Precision,
    Preset,
    Prior,
    Seed,
    Sigma,
    Taskless,
    given,
    load_runner,
    sidecar,
    split_examples,
    user_errors,
)
from bmtpt_cli.console import console
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.settings import EvaluateSettings, help_for, resolve_settings


def _h(name: str) -> str:
    return help_for(EvaluateSettings, name)


def evaluate_command(
    preset: Preset = None,
    prompts: Annotated[Optional[Path], typer.Option(help=_h("prompts"))] = None,
    decode: Annotated[Optional[str], typer.Option(help=_h("decode"))] = None,
    split: Annotated[Optional[str], typer.Option(help=_h("split"))] = None,
    shots: Annotated[Optional[int], typer.Option(help=_h("shots"))] = None,
    init: Annotated[Optional[str], typer.Option(help=_h("init"))] = None,
    tasks: Annotated[Optional[str], typer.Option(help=_h("tasks"))] = None,
    seeds: Annotated[Optional[str], typer.Option(help=_h("seeds"))] = None,
    steps: Annotated[Optional[int], typer.Option(help=_h("steps"))] = None,
    model: Model = None,
    prompt_length: Annotated[Optional[int], typer.Option(help=_h("prompt_length"))] = None,
    batch_size: BatchSize = None,
    lr_shared: LrShared = None,
    lr_scales: LrScales = None,
    sigma: Sigma = None,
    prior: Prior = None,
    eval_batch_size: EvalBatchSize = None,
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
    resume: Annotated[Optional[bool], typer.Option("--resume", help=_h("resume"))] = None,
    out: Annotated[Optional[Path], typer.Option(help=_h("out"))] = None,
    force: Force = None,
) -> None:
    """Score target prompts on each task's test split; with --shots, the few-shot probe from --init."""
    flags = given(locals())
    with user_errors():
        settings = resolve_settings("evaluate", preset, flags)
        report = run_fewshot(settings) if settings.shots else run_evaluate(settings)
        render(report)
        console.print(f"wrote {settings.out}", markup=False)


def run_evaluate(settings: EvaluateSettings) -> dict:
    """Score every task of a prompts file on its test split; writes and returns the results."""
    from bmtpt_cli.artifacts import OutputLock, check_writable

    with OutputLock(settings.out):
        check_writable(settings.out, force=settings.force)
        return _score_prompts(settings)


def _score_prompts(settings: EvaluateSettings) -> dict:
    from bmtpt_cli.artifacts import check_model_fit, load_prompts
    from bmtpt_cli.data.registry import resolve_tasks
    from bmtpt_cli.evaluation.scoring import score_task

    artifact = load_prompts(settings.prompts)
    tasks = resolve_tasks(artifact.tasks)
    test_by_task = {task.name: split_examples(task, settings.split, settings) for task in tasks}
    runner = load_runner(settings)
    check_model_fit(
        settings.prompts, artifact.metadata, d_model=runner.d_model, prompt_length=settings.explicit("prompt_length")
    )
    results = []
    for task in tasks:
        score = score_task(
            runner,
            artifact.prompt(task.name),
            task,
            test_by_task[task.name],
            decode=settings.decode,
            batch_size=settings.eval_batch_size,
            label_style=settings.label_style,
        )
        results.append(vars(score) | {"split": settings.split})
    report = {"prompts": str(settings.prompts), "model": settings.model, "results": results}
    _write_report(settings.out, report)
    return report


def run_fewshot(settings: EvaluateSettings) -> dict:
    """The few-shot probe: per task and seed, adapt from --init on k training examples, score on test.

    Each finished (task, seed) cell is appended to `<out>.cells.jsonl`; after an interruption,
    `--resume` keeps the finished cells and runs only the rest.
    """
    from bmtpt_cli.adapter.init import read_init_file
    from bmtpt_cli.artifacts import OutputLock, check_writable, file_sha256
    from bmtpt_cli.data.registry import resolve_tasks

    tasks = resolve_tasks(settings.tasks)
    cells_path = sidecar(settings.out, ".cells.jsonl")
    with OutputLock(settings.out):
        check_writable(settings.out, force=settings.force)
        if cells_path.exists() and not (settings.resume or settings.force):
            raise BmtptError(
                f"an unfinished few-shot probe left its cells in '{cells_path}': pass --resume to keep them or --force to start over"
            )
        init_file = read_init_file(settings.init)
        data = {task.name: (split_examples(task, "train", settings), split_examples(task, settings.split, settings)) for task in tasks}
        fingerprint = {
            **settings.model_dump(mode="json", include=set(FEWSHOT_RESULT_SETTINGS)),
            "init_sha256": file_sha256(init_file.path) if init_file else "",
        }
        if not settings.resume:
            cells_path.unlink(missing_ok=True)  # --force: the earlier probe's cells are discarded
        done = _read_cells(cells_path, fingerprint) if settings.resume else {}
        scores = _run_cells(settings, tasks, data, init_file, fingerprint, done, cells_path)
        report = {"init": settings.init, "model": settings.model, "results": [
            _fewshot_row(settings, task, scores[task.name], len(data[task.name][1])) for task in tasks
        ]}
        _write_report(settings.out, report)
        cells_path.unlink(missing_ok=True)
    return report


FEWSHOT_RESULT_SETTINGS = (
    "model", "init", "shots", "steps", "batch_size", "lr_shared", "lr_scales", "sigma", "prior", "warmup_steps",
    "weight_decay", "mixing_cap", "decode", "split", "taskless", "label_style", "data_dir", "max_source_length",
    "max_target_length", "prompt_length", "seed",
)
"""The settings a finished few-shot cell depends on; a cell is reused only if they all match."""


def _read_cells(path: Path, fingerprint: dict) -> dict[tuple[str, int], dict]:
    """Finished cells of an interrupted probe: (task, seed) -> TaskScore fields."""
    from bmtpt_cli.checkpoint import check_fingerprint, read_jsonl_records

    if not path.is_file():
        raise BmtptError(f"--resume given but no cells at '{path}': run without --resume to start fresh")
    cells = {}
    for record in read_jsonl_records(path):
        check_fingerprint(path, record["fingerprint"], fingerprint)
        cells[(record["task"], record["seed"])] = record["score"]
    return cells


def _run_cells(settings, tasks, data, init_file, fingerprint, done, cells_path) -> dict[str, list]:
    """Adapt and score every (task, seed) cell not in `done`; returns each task's scores in seed order."""
    from bmtpt_cli.adapter.init import resolve_init
    from bmtpt_cli.adapter.train import adapt
    from bmtpt_cli.commands.adapt import adapt_config
    from bmtpt_cli.data.sampling import kshot
    from bmtpt_cli.evaluation.scoring import TaskScore, score_task

    runner = init = None
    scores: dict[str, list] = {}
    with open(cells_path, "a", encoding="utf-8") as cells:
        for task in tasks:
            train, test = data[task.name]
            scores[task.name] = []
            for seed in settings.seeds:
                if (task.name, seed) in done:
                    scores[task.name].append(TaskScore(**done[(task.name, seed)]))
                    continue
                if runner is None:  # load the model only when a cell is left to run
                    runner = load_runner(settings)
                    init = resolve_init(
                        settings.init, runner, prompt_length=settings.prompt_length,
                        required_length=settings.explicit("prompt_length"), seed=settings.seed, init_file=init_file,
                    )
                config = adapt_config(settings, steps=settings.steps, eval_every=None, seed=seed)
                result = adapt(
                    runner, [task], {task.name: kshot(train, settings.shots, seed)}, {}, init.prompt, config,
                    prior_mean=init.prior_mean, label_style=settings.label_style,
                )
                score = score_task(
                    runner, result.prompts.compose(0).detach(), task, test, decode=settings.decode,
                    batch_size=settings.eval_batch_size, label_style=settings.label_style,
                )
                cells.write(json.dumps({"task": task.name, "seed": seed, "fingerprint": fingerprint, "score": vars(score)}) + "\n")
                cells.flush()
                scores[task.name].append(score)
    return scores


def _fewshot_row(settings, task, scores, num_examples: int) -> dict:
    """One task's few-shot result: mean and standard deviation over seeds, and every seed's value."""
    values = [score.value for score in scores]
    return {
        "task": task.name,
        "metric": task.metric,
        "value": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": dict(zip(map(str, settings.seeds), values)),
        "metrics": {name: statistics.fmean(score.metrics[name] for score in scores) for name in task.metrics},
        "decode": scores[0].decode,
        "examples": num_examples,
        "split": settings.split,
        "shots": settings.shots,
    }


def _write_report(path: Path, report: dict) -> None:
    from bmtpt_cli.artifacts import write_text_atomic

    write_text_atomic(path, json.dumps(report, indent=2) + "\n")


def render(report: dict) -> None:
    """Print the results as a rich table (mean ± std over seeds for the few-shot probe)."""
    from rich.table import Table

    table = Table(title="bmtpt evaluate")
    for column in ("task", "metric", "value", "decode", "split", "examples"):
        table.add_column(column, justify="right" if column in ("value", "examples") else "left")
    for row in report["results"]:
        value = f"{row['value']:.4f}" + (f" ± {row['std']:.4f}" if "std" in row else "")
        table.add_row(row["task"], row["metric"], value, row["decode"], row["split"], str(row["examples"]))
    console.print(table)
