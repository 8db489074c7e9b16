"""`bmtpt evaluate` as one function: a prompts file → test metrics per task → results.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.artifacts import check_model_fit, file_sha256, load_prompts
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.scoring.predictions import write_predictions
from bmtpt_cli.scoring.score import score_task
from bmtpt_cli.methods.registry import method_of_artifact
from bmtpt_cli.runner.load import RunnerConfig, load_runner
from bmtpt_cli.runtime.files import OutputLock, check_writable, write_text_atomic
from bmtpt_cli.runtime.progress import SILENT, Progress
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.scoring.config import ScoringConfig


@dataclass(frozen=True)
class EvaluateJob:
    """A prompts file to score on each of its tasks; `required_length`: a prompt length asked for explicitly."""

    prompts: Path
    required_length: int | None
    runner: RunnerConfig
    data: DataConfig
    scoring: ScoringConfig
    out: Path
    force: bool
    settings: dict
    predictions: bool = False  # --predictions: also write every example's prediction beside `out`


def run_evaluate(job: EvaluateJob, progress: Progress = SILENT) -> dict:
    """Score every task of the prompts file on the configured split; writes and returns the report."""
    with OutputLock(job.out):
        check_writable(job.out, force=job.force)
        artifact = load_prompts(job.prompts)
        tasks = resolve_tasks(artifact.tasks)
        examples = job.data.by_task(tasks, job.scoring.split)
        runner = load_runner(job.runner, progress=progress)
        check_model_fit(job.prompts, artifact.metadata, d_model=runner.d_model, prompt_length=job.required_length)
        module = method_of_artifact(artifact.metadata).load(artifact, runner).to(runner.device)
        results, records = [], []
        for k, task in enumerate(tasks):
            details = [] if job.predictions else None
            score = score_task(
                runner, module.scorer(k), task, examples[task.name], label_style=job.data.label_style,
                **job.scoring.options(), details=details,
            )
            results.append(vars(score) | {"split": job.scoring.split})
            records += details or []
        report = {
            "prompts": str(job.prompts), "prompts_sha256": file_sha256(job.prompts), "model": job.runner.model,
            "results": results, "settings": job.settings, "data": job.data.provenance(tasks),
            "provenance": provenance(runner.device),
        }
        if job.predictions:  # before the report, so a report never names a predictions file that is not there
            report["predictions"] = str(write_predictions(job.out, records))
        write_report(job.out, report)
    return report


def write_report(path: Path, report: dict) -> None:
    """Write a results report as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
