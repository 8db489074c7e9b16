"""`bmtpt evaluate` as one function: a prompts file → test metrics per task → results.json; with
`--calibrate` a temperature per task fitted on its validation split, with `--plots` a reliability
diagram per rank-scored task beside the results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.artifacts import check_model_fit, file_sha256, load_prompts
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.calibration import (
    BINS, TEMPERATURE_GENERATED, confidence_and_correctness, reliability_bins, scaled_scores, temperature_scaling,
)
from bmtpt_cli.scoring.predictions import write_predictions
from bmtpt_cli.scoring.score import TaskScore, decode_mode, score_task
from bmtpt_cli.methods.registry import method_of_artifact
from bmtpt_cli.runner.load import RunnerConfig, load_runner
from bmtpt_cli.runtime.files import OutputLock, check_regular, check_writable, side_file, write_text_atomic
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
    calibrate: bool = False  # --calibrate: a temperature per task fitted on its validation split (SPEC §4)
    plots: bool = False  # --plots: a reliability diagram per rank-scored task beside `out`


CALIBRATION_SPLIT = "validation"
"""The split `evaluate --calibrate` fits each task's temperature on."""


def run_evaluate(job: EvaluateJob, progress: Progress = SILENT) -> dict:
    """Score every task of the prompts file on the configured split; writes and returns the report."""
    with OutputLock(job.out):
        check_writable(job.out, force=job.force)
        artifact = load_prompts(job.prompts)
        tasks = resolve_tasks(artifact.tasks)
        examples = job.data.by_task(tasks, job.scoring.split)
        ranked = [task for task in tasks
                  if decode_mode(task, examples[task.name], job.scoring.decode, job.data.label_style) == "rank"]
        dev = calibration_examples(job, ranked) if job.calibrate else {}
        if job.plots:
            for task in ranked:  # a plot path that is no regular file is refused before the model loads
                check_regular(reliability_path(job.out, task.name), "--out")
        runner = load_runner(job.runner, progress=progress)
        check_model_fit(job.prompts, artifact.metadata, d_model=runner.d_model, prompt_length=job.required_length)
        module = method_of_artifact(artifact.metadata).load(artifact, runner).to(runner.device)
        scores, records = [], []
        for k, task in enumerate(tasks):
            details = [] if job.predictions else None
            score = score_task(
                runner, module.scorer(k), task, examples[task.name], label_style=job.data.label_style,
                **job.scoring.options(), details=details,
            )
            if job.calibrate:
                score.calibration |= _temperature(runner, module.scorer(k), task, dev.get(task.name), examples[task.name],
                                                  score, job)
            scores.append(score)
            records += details or []
        report = {
            "prompts": str(job.prompts), "prompts_sha256": file_sha256(job.prompts), "model": job.runner.model,
            "results": [score.report() | {"split": job.scoring.split} for score in scores], "settings": job.settings,
            "data": job.data.provenance(tasks), "provenance": provenance(runner.device),
        }
        # side files before the report, so a report never names a file that is not there
        if job.predictions:
            report["predictions"] = str(write_predictions(job.out, records))
        if job.plots:
            report["plots"] = [str(path) for path in write_reliability_diagrams(job.out, scores, examples, job.runner.model)]
        write_report(job.out, report)
    return report


def calibration_examples(job: EvaluateJob, tasks: list[Task]) -> dict[str, list[TextExample]]:
    """Each rank-scored task's validation examples, which `--calibrate` fits the temperature on; a split
    that cannot be read, or is empty, is refused in one line before the model loads."""
    if not tasks:
        return {}
    try:
        dev = job.data.by_task(tasks, CALIBRATION_SPLIT)
    except BmtptError as exc:
        raise BmtptError(f"--calibrate fits each task's temperature on its {CALIBRATION_SPLIT} split, which cannot be "
                         f"read: {exc} (or drop --calibrate)") from None
    empty = [task.name for task in tasks if not dev[task.name]]
    if empty:
        raise BmtptError(f"--calibrate fits each task's temperature on its {CALIBRATION_SPLIT} split, but "
                         f"{', '.join(empty)} has no {CALIBRATION_SPLIT} examples: give data with a {CALIBRATION_SPLIT} "
                         "split, or drop --calibrate")
    return dev


def _temperature(runner, prompt, task: Task, dev: list[TextExample] | None, test: list[TextExample], score: TaskScore,
                 job: EvaluateJob) -> dict:
    """The temperature entries of a task's calibration: T fitted on its validation examples under the same
    prompt and rules, and the test calibration scaled by it; undefined (said why) for a generated task."""
    if score.decode != "rank" or score.label_scores is None or dev is None:
        return {"temperature": TEMPERATURE_GENERATED}
    fit = score_task(runner, prompt, task, dev, label_style=job.data.label_style, **job.scoring.options())
    if fit.label_scores is None:
        return {"temperature": f"not defined: the {CALIBRATION_SPLIT} examples are generated, not rank-scored"}
    return temperature_scaling(fit.label_scores, [e.target for e in dev], score.label_scores, [e.target for e in test],
                               fitted_on=CALIBRATION_SPLIT)


def reliability_path(out: Path, task: str) -> Path:
    """Where `--plots` writes a task's reliability diagram: beside `out`, named after its whole name
    (`results.json` → `results.json.reliability.rte.png`), as every side file."""
    return side_file(out, f".reliability.{task}.png")


def write_reliability_diagrams(out: Path, scores: list[TaskScore], examples: dict[str, list[TextExample]],
                               model: str) -> list[Path]:
    """A reliability diagram per rank-scored task with a defined calibration (`experiments.plot`), with the
    temperature-scaled bins where the calibration has a temperature; returns the paths written."""
    from bmtpt_cli.experiments.plot import write_reliability_diagram
    from bmtpt_cli.runner.model import TINY_MODEL

    written = []
    for score in scores:
        calibration = score.calibration
        if score.label_scores is None or "undefined" in calibration:
            continue
        golds = [e.target for e in examples[score.task]]
        bins = reliability_bins(*confidence_and_correctness(score.label_scores, golds), bins=BINS)
        temperature = calibration.get("temperature")
        scaled = None
        if isinstance(temperature, float):
            scaled = reliability_bins(*confidence_and_correctness(scaled_scores(score.label_scores, temperature), golds),
                                      bins=BINS)
        path = reliability_path(out, score.task)
        write_reliability_diagram(
            path, bins, title=f"{score.task} · reliability · {score.examples} examples", ece=calibration["ece"],
            scaled_bins=scaled, scaled_ece=calibration["scaled"]["ece"] if scaled else None,
            temperature=temperature if scaled else None,
            caption="model 'tiny' has random weights: its confidences are chance level" if model == TINY_MODEL else None,
        )
        written.append(path)
    return written


def write_report(path: Path, report: dict) -> None:
    """Write a results report as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
