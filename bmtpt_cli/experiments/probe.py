"""`bmtpt evaluate --shots K`: one method probed on K-shot subsets of each task, once per seed — one
column of the `fewshot` grid, run by the grid's own cells (`grid.run_grid_cells`: the same cell
function, the same groups of cells in shared passes, the same resume).

Each finished cell is a row of `<out>.cells.jsonl`, appended as its group finishes; after an
interruption `--resume` keeps the rows whose fingerprint matches and runs the rest; the report
(mean and standard deviation over seeds per task, every seed's value, the protocol) replaces the
cells file when the probe is complete.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bmtpt_cli.adapter.train import AdaptConfig
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.experiments.fewshot import FewshotProtocol, leave_nothing_on_failure, mean_and_std
from bmtpt_cli.experiments.grid import GridJob, Method, plan_grid, run_grid_cells
from bmtpt_cli.jobs.evaluate import write_report
from bmtpt_cli.methods.init import RANDOM_INIT, read_init_file
from bmtpt_cli.methods.registry import method_source, resolve_method, source_spec
from bmtpt_cli.runner.load import RunnerConfig
from bmtpt_cli.runtime.files import OutputLock, check_writable
from bmtpt_cli.runtime.outputs import RunOutput
from bmtpt_cli.runtime.progress import SILENT, Progress
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.scoring.calibration import FIGURES
from bmtpt_cli.scoring.config import ScoringConfig


@dataclass(frozen=True)
class FewshotJob:
    """One method (from `--init`, or `--method`) probed on k-shot subsets of each task, once per seed.

    `adapt.seed` is replaced by each cell's seed; `seed` seeds nothing a cell uses (each cell's
    seed does); `prompt_length` and `required_length` as for `bmtpt adapt`.
    """

    tasks: list[str]
    init: str
    method: str | None  # None: the method --init means (`methods.registry.infer_method`)
    prior: bool  # --prior, which the method's prior rule reads
    shots: int
    shot_sampling: str  # task | class
    dev_shots: int | None
    seeds: list[int]
    seed: int
    prompt_length: int | None
    required_length: int | None
    retrieval_steps: int
    retrieval_measure: str
    runner: RunnerConfig
    data: DataConfig
    adapt: AdaptConfig
    scoring: ScoringConfig
    output: RunOutput
    settings: dict
    report_to: str = "none"  # --report-to: each cell's step records also go there, one run per cell
    cells_per_pass: int = 1  # cells of one task adapted together in shared passes
    calibrate: bool = False  # --calibrate: each cell fits a temperature on its dev examples

    @property
    def protocol_config(self) -> FewshotProtocol:
        """The protocol every cell of this probe follows."""
        return FewshotProtocol(self.shots, self.shot_sampling, self.dev_shots, self.adapt, self.scoring, self.data.label_style,
                               calibrate=bool(self.calibrate))

    def grid(self, method_name: str) -> GridJob:
        """This probe as a grid of one method and one k (its cells, fingerprints and resume are the grid's)."""
        return GridJob(
            tasks=self.tasks, methods=[method_name], shots=[self.shots], seeds=list(self.seeds), seed=self.seed,
            particles=[], multitask=[], source_prompts=[], shot_sampling=self.shot_sampling, dev_shots=self.dev_shots,
            retrieval_steps=self.retrieval_steps, retrieval_measure=self.retrieval_measure,
            prompt_length=self.prompt_length, required_length=self.required_length, runner=self.runner, data=self.data,
            adapt=self.adapt, prior=self.prior, scoring=self.scoring, out=self.output.out, force=self.output.force,
            resume=self.output.resume, settings=self.settings, report_to=self.report_to, baseline=method_name,
            cells_per_pass=self.cells_per_pass, calibrate=bool(self.calibrate),
        )

    def protocol(self, method: str) -> dict:
        """The protocol as recorded in the report."""
        described = self.protocol_config.describe()
        return {
            **{key: described[key] for key in ("shots", "per")},
            "seeds": list(self.seeds),
            "subset": described["subset"],
            "init": "random vocabulary draw seeded by each cell's seed" if self.init == RANDOM_INIT else self.init,
            "method": method,
            **{key: described[key] for key in ("lr_factor", "batches", "steps", "selection", "calibration") if key in described},
        }


def run_fewshot(job: FewshotJob, progress: Progress = SILENT) -> dict:
    """Run every (task, seed) cell not finished yet, as the grid runs its cells; writes and returns the report."""
    tasks = resolve_tasks(job.tasks)
    output = job.output
    with OutputLock(output.out), leave_nothing_on_failure(output.cells):
        check_writable(output.out, force=output.force)
        if output.cells.exists() and not (output.resume or output.force):
            raise BmtptError(
                f"an unfinished few-shot probe left its cells in '{output.cells}': pass --resume to keep them or --force to start over"
            )
        if output.resume and not output.cells.is_file():
            raise BmtptError(f"--resume given but no cells at '{output.cells}': run without --resume to start fresh")
        spec = source_spec(job.method, job.init)
        init_file = read_init_file(spec)
        method = resolve_method(job.method, spec, init_file, None, job.prior)
        grid = job.grid(method.name)
        plan = plan_grid(grid, [Method(method, method_source(method, spec), option="--init")])
        if not output.resume:
            output.cells.unlink(missing_ok=True)  # --force: the earlier probe's cells are discarded
        rows = run_grid_cells(grid, plan, output.cells, tracked_at=output.out, progress=progress, label="few-shot probe")
        report = {
            "init": job.init, "init_sha256": plan.hashes.get(plan.methods[0].init, ""), "method": method.name,
            "model": job.runner.model, "protocol": job.protocol(method.name),
            "results": [fewshot_row(job, task, [row for row in rows if row["task"] == task.name],
                                    len(plan.data[task.name].test)) for task in tasks],
            "settings": job.settings, "data": job.data.provenance(tasks), "provenance": provenance(job.runner.device),
        }
        write_report(output.out, report)
        output.cells.unlink(missing_ok=True)
    return report


def fewshot_row(job: FewshotJob, task, rows: list[dict], num_examples: int) -> dict:
    """One task's few-shot result from its cells' rows (seed order): mean and standard deviation over
    seeds, and every seed's value."""
    values = [row["value"] for row in rows]
    mean, std = mean_and_std(values)
    return {
        "task": task.name,
        "metric": task.metric,
        "value": mean,
        "std": std,
        "per_seed": {str(row["seed"]): row["value"] for row in rows},
        "metrics": {name: statistics.fmean(row["metrics"][name] for row in rows) for name in task.metrics},
        "calibration": mean_calibration([row.get("calibration", {}) for row in rows], [row["seed"] for row in rows]),
        "decode": rows[0]["decode"],
        "rules": rows[0]["rules"],
        "invalid": sum(row["invalid"] for row in rows),
        "examples": num_examples,
        "split": job.scoring.split,
        "shots": job.shots,
    }


def mean_calibration(entries: list[dict], seeds: list[int] | None = None) -> dict:
    """The seeds' calibration figures averaged (ECE, NLL, Brier), or the first reason they are undefined;
    with temperature scaling (`--calibrate`) also the scaled figures averaged and every seed's temperature
    (`temperature_per_seed`), or the first reason the temperature is undefined."""
    undefined = [entry for entry in entries if "undefined" in entry or not entry]
    if undefined:
        return undefined[0]  # with --calibrate it says why the temperature is undefined as well
    mean = {key: statistics.fmean(entry[key] for entry in entries) for key in FIGURES}
    if not any("temperature" in entry for entry in entries):
        return mean
    unscaled = [entry["temperature"] for entry in entries if not isinstance(entry.get("temperature"), (int, float))]
    if unscaled:
        return mean | {"temperature": unscaled[0] if isinstance(unscaled[0], str) else "not defined: a seed has no temperature"}
    seeds = seeds if seeds is not None else list(range(len(entries)))
    return mean | {
        "temperature_per_seed": {str(seed): entry["temperature"] for seed, entry in zip(seeds, entries)},
        "scaled": {key: statistics.fmean(entry["scaled"][key] for entry in entries) for key in FIGURES},
        "fitted_on": entries[0].get("fitted_on", ""),
    }
