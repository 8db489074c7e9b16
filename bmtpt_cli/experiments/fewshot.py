"""The few-shot probe (SPEC §4): per task and seed, adapt from an init on k training examples and
score on the test split; mean and standard deviation over seeds.

The paper's protocol: k examples per task (`shot_sampling="class"`: k per label), one subset per
seed that every method shares (it depends on the seed only), a random init drawn from each cell's
own seed, the learning rates × 1/3 at k = 4 and batches of the k examples without replacement. bmtpt scores
each cell at its best of 10 evaluations on `dev_shots` validation examples (32 by default; 0: the
last step, as the paper), because at high learning rates the last step of one cell is chaotic.
The protocol is written into the report.

One (task, k, seed) cell is `run_cell`, the function both `evaluate --shots K` (one init, here) and
`bmtpt fewshot` (a grid of methods × k, `experiments/grid.py`) call. `evaluate --shots K` appends
each finished (task, seed) cell to `<out>.cells.jsonl`, and after an interruption `resume` keeps the
finished cells and runs the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.adapter.batched import CellSpec, adapt_cells, score_cells
from bmtpt_cli.methods.base import StartRequest, TransferMethod
from bmtpt_cli.methods.init import TargetInit, read_init_file
from bmtpt_cli.methods.registry import method_source, resolve_method
from bmtpt_cli.adapter import train as adapter_train
from bmtpt_cli.adapter.train import AdaptConfig, AdaptStepRecord
from bmtpt_cli.artifacts import file_sha256
from bmtpt_cli.data.config import DataConfig, examples_sha256
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.data.sampling import EpochBatches, kshot, kshot_per_class
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.jobs.evaluate import write_report
from bmtpt_cli.scoring.config import ScoringConfig
from bmtpt_cli.scoring.score import TaskScore, score_task
from bmtpt_cli.runner.load import RunnerConfig, load_runner
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.runtime.checkpoint import check_fingerprint, read_jsonl_records
from bmtpt_cli.runtime.files import OutputLock, check_writable
from bmtpt_cli.runtime.loop import RunFiles, config_fingerprint
from bmtpt_cli.runtime.outputs import RunOutput
from bmtpt_cli.runtime.progress import SILENT, Progress
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.runtime.tracking import TrackedRun, open_tracker


# ------------------------------------------------------------------------------- one cell
@dataclass(frozen=True)
class FewshotProtocol:
    """How every few-shot cell is trained and scored (SPEC §4), whatever its init."""

    shots: int  # k
    shot_sampling: str  # task | class
    dev_shots: int | None  # 0 or None: score the last step
    adapt: AdaptConfig  # the configured hyperparameters, before the k = 4 factor
    scoring: ScoringConfig
    label_style: str

    @property
    def lr_factor(self) -> float:
        """The paper's learning-rate scale for k = 4 (§6.1.2); 1 otherwise."""
        return 1 / 3 if self.shots == 4 else 1.0

    @property
    def eval_every(self) -> int | None:
        """Dev evaluations for selection: 10 over the run with `dev_shots`, none without."""
        return max(1, self.adapt.steps // 10) if self.dev_shots else None

    def config(self, seed: int) -> AdaptConfig:
        """The cell's adaptation config: lrs × `lr_factor`, its dev schedule and its seed."""
        return dataclasses.replace(
            self.adapt, lr_shared=self.adapt.lr_shared * self.lr_factor, lr_scales=self.adapt.lr_scales * self.lr_factor,
            eval_every=self.eval_every, seed=seed,
        )

    def subset(self, train: list[TextExample], seed: int) -> list[TextExample]:
        """The cell's k training examples: they depend on the seed only, so every method shares them."""
        return (kshot_per_class if self.shot_sampling == "class" else kshot)(train, self.shots, seed)

    def dev(self, task: Task, validation: list[TextExample], seed: int) -> dict[str, list[TextExample]]:
        """The dev examples used for selection with `dev_shots` (none without)."""
        return {task.name: kshot(validation, min(self.dev_shots, len(validation)), seed)} if self.dev_shots else {}

    def selection(self) -> str:
        """The model-selection rule in words."""
        if not self.dev_shots:
            return "last step"
        return (f"best of {self.adapt.steps // max(1, self.eval_every or 1)} dev evaluations on {self.dev_shots} "
                "validation examples per task")

    def describe(self) -> dict:
        """The protocol fields every report records."""
        return {
            "shots": self.shots,
            "per": self.shot_sampling,
            "subset": "one per seed, shared by every method (seeded permutation of the training split)",
            "lr_factor": self.lr_factor,
            "batches": f"the k-shot examples without replacement, {self.adapt.batch_size} at most per step",
            "steps": self.adapt.steps,
            "selection": self.selection(),
        }


@dataclass(frozen=True)
class TaskData:
    """One task's examples for the probe: the training split, the scored split, dev (with dev_shots)."""

    train: list[TextExample]
    test: list[TextExample]
    validation: list[TextExample]


def load_task_data(data: DataConfig, tasks: list[Task], split: str, dev_shots: int | None) -> dict[str, TaskData]:
    """Every task's probe data; all unreadable task splits are named in one error before a model loads."""
    splits = ("train", split, "validation") if dev_shots and split != "validation" else ("train", split)
    loaded = data.splits(tasks, *splits)
    return {
        task.name: TaskData(loaded["train"][task.name], loaded[split][task.name],
                            loaded["validation"][task.name] if dev_shots else [])
        for task in tasks
    }


@dataclass
class CellResult:
    """A finished cell: its test score, the init it started from and the k-shot subset it saw."""

    score: TaskScore
    init: TargetInit
    subset: list[TextExample]


def subset_sha256(subset: list[TextExample]) -> str:
    """A fingerprint of a k-shot subset (its inputs and targets in order), to show two cells shared it."""
    return hashlib.sha256(json.dumps([[e.source, e.target] for e in subset]).encode()).hexdigest()


def run_cell(
    runner: FrozenT5Runner,
    task: Task,
    data: TaskData,
    protocol: FewshotProtocol,
    seed: int,
    make_init: Callable[[list[TextExample]], TargetInit],
    method: TransferMethod,
    prior: bool,
    *,
    on_step: Callable[[AdaptStepRecord], None] | None = None,
    tracker: TrackedRun | None = None,
) -> CellResult:
    """One few-shot cell (SPEC §4): the seed's k-shot subset → `make_init(subset)` (retrieval may
    look at the subset) → adapt `method`'s prompt module for `steps` on epochs of the subset, with
    the prior its rule gives for `--prior` = `prior` → score on the test split."""
    subset = protocol.subset(data.train, seed)
    init = make_init(subset)
    config = protocol.config(seed)
    result = adapter_train.adapt(
        runner, [task], {task.name: subset}, protocol.dev(task, data.validation, seed),
        method.prompt_module(init.prompt, [task.name]), config,
        prior_mean=method.prior_centre(init, prior), label_style=protocol.label_style,
        batches=EpochBatches(task.name, subset, config.batch_size), on_step=on_step,
        files=RunFiles(tracker=tracker) if tracker else None,  # --report-to: the cell's step records
    )
    score = score_task(
        runner, result.prompts.scorer(0), task, data.test, label_style=protocol.label_style,
        **protocol.scoring.options(),
    )
    return CellResult(score, init, subset)


@dataclass(frozen=True)
class CellPlan:
    """One cell of a group run together: its seed, how its init is made from its subset, its method
    and `--prior` (whose prior rule, with the init, gives the cell's prior centre)."""

    seed: int
    make_init: Callable[[list[TextExample]], TargetInit]
    method: TransferMethod
    prior: bool


def run_cells(
    runner: FrozenT5Runner,
    task: Task,
    data: TaskData,
    protocol: FewshotProtocol,
    cells: list[CellPlan],
    *,
    on_step: Callable[[int, AdaptStepRecord], None] | None = None,
) -> list[CellResult]:
    """Several cells of one task and protocol (SPEC §4) adapted and scored together, in shared passes
    of the frozen LM (`adapter.batched`): each is `run_cell` for its own seed, init and prior, to
    float32 round-off (bit for bit for one cell). `on_step(i, record)`: cell i's step records."""
    specs, inits, subsets = [], [], []
    for cell in cells:
        subset = protocol.subset(data.train, cell.seed)
        init = cell.make_init(subset)
        dev = protocol.dev(task, data.validation, cell.seed).get(task.name, [])
        specs.append(CellSpec(task, subset, dev, init.prompt, cell.method.prior_centre(init, cell.prior),
                              protocol.config(cell.seed)))
        inits.append(init)
        subsets.append(subset)
    results = adapt_cells(runner, specs, label_style=protocol.label_style, on_step=on_step)
    scores = score_cells(runner, [result.prompts.scorer(0) for result in results], task, data.test,
                         label_style=protocol.label_style, **protocol.scoring.options())
    return [CellResult(score, init, subset) for score, init, subset in zip(scores, inits, subsets)]


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) over seeds."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# ------------------------------------------------------------------------------- evaluate --shots
@dataclass(frozen=True)
class FewshotJob:
    """One init probed on k-shot subsets of each task, once per seed.

    `adapt.seed` is replaced by each cell's seed; `seed` seeds a random init; `prompt_length`
    and `required_length` as for `bmtpt adapt`.
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
    runner: RunnerConfig
    data: DataConfig
    adapt: AdaptConfig
    scoring: ScoringConfig
    output: RunOutput
    settings: dict
    report_to: str = "none"  # --report-to: each cell's step records also go there, one run per (task, seed)

    @property
    def protocol_config(self) -> FewshotProtocol:
        """The protocol every cell of this probe follows."""
        return FewshotProtocol(self.shots, self.shot_sampling, self.dev_shots, self.adapt, self.scoring, self.data.label_style)

    def fingerprint(self, init_sha256: str) -> dict:
        """The settings a finished cell depends on (a cell is reused only if they all match): the
        adaptation and scoring configs, the data and runner settings, and the probe's own fields."""
        adapt = config_fingerprint(self.adapt, ignore=("checkpoint_every", "eval_every", "eval_batch_size", "seed"))
        scoring = config_fingerprint(self.scoring, ignore=("eval_batch_size",))
        own = {name: getattr(self, name) for name in ("init", "shots", "shot_sampling", "dev_shots", "prompt_length", "seed")}
        method = {"method": self.method} if self.method is not None else {}
        return {
            "model": self.runner.model, **own, **adapt, "prior": self.prior, **method, **scoring, **self.data.fingerprint(),
            **self.runner.fingerprint(), "init_sha256": init_sha256,
        }

    @property
    def lr_factor(self) -> float:
        """The paper's learning-rate scale for k = 4 (§6.1.2); 1 otherwise."""
        return self.protocol_config.lr_factor

    @property
    def eval_every(self) -> int | None:
        """Dev evaluations for selection: 10 over the run with `dev_shots`, none without."""
        return self.protocol_config.eval_every

    def protocol(self) -> dict:
        """The protocol as recorded in the report."""
        described = self.protocol_config.describe()
        return {
            **{key: described[key] for key in ("shots", "per")},
            "seeds": list(self.seeds),
            "subset": described["subset"],
            "init": "random vocabulary draw seeded by each cell's seed" if self.init == "random" else self.init,
            **{key: described[key] for key in ("lr_factor", "batches", "steps", "selection")},
        }


def run_fewshot(job: FewshotJob, progress: Progress = SILENT) -> dict:
    """Run every (task, seed) cell not finished yet; writes and returns the report."""
    tasks = resolve_tasks(job.tasks)
    output = job.output
    with OutputLock(output.out), leave_nothing_on_failure(output.cells):
        check_writable(output.out, force=output.force)
        if output.cells.exists() and not (output.resume or output.force):
            raise BmtptError(
                f"an unfinished few-shot probe left its cells in '{output.cells}': pass --resume to keep them or --force to start over"
            )
        init_file = read_init_file(job.init)
        method = resolve_method(job.method, job.init, init_file, None, job.prior)
        data = load_task_data(job.data, tasks, job.scoring.split, job.dev_shots)
        fingerprint = job.fingerprint(file_sha256(init_file.path) if init_file else "")
        fingerprint["data_sha256"] = examples_sha256({name: vars(task_data) for name, task_data in data.items()})
        if not output.resume:
            output.cells.unlink(missing_ok=True)  # --force: the earlier probe's cells are discarded
        done = read_cells(output.cells, fingerprint) if output.resume else {}
        scores = _run_cells(job, method, tasks, data, init_file, fingerprint, done, progress)
        report = {
            "init": job.init, "init_sha256": fingerprint["init_sha256"], "model": job.runner.model,
            "protocol": job.protocol(),
            "results": [fewshot_row(job, task, scores[task.name], len(data[task.name].test)) for task in tasks],
            "settings": job.settings, "data": job.data.provenance(tasks), "provenance": provenance(job.runner.device),
        }
        write_report(output.out, report)
        output.cells.unlink(missing_ok=True)
    return report


@contextlib.contextmanager
def leave_nothing_on_failure(path: Path, directory: Path | None = None):
    """On an error or an interrupt before a row reached `path`: remove the empty `path`, and `directory`
    (one this run created) if that leaves it empty, so the corrected rerun is not refused as the
    continuation of an unfinished run (`--shots 100000` failed, and its empty file blocked the rerun)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()
            if directory is not None:
                directory.rmdir()  # only if empty
        raise


def read_cells(path, fingerprint: dict) -> dict[tuple[str, int], dict]:
    """Finished cells of an interrupted probe: (task, seed) → TaskScore fields."""
    if not path.is_file():
        raise BmtptError(f"--resume given but no cells at '{path}': run without --resume to start fresh")
    cells = {}
    for record in read_jsonl_records(path):
        check_cell(path, record)
        check_fingerprint(path, record["fingerprint"], fingerprint)
        cells[(record["task"], record["seed"])] = record["score"]
    return cells


def check_cell(path, record: dict) -> None:
    """Refuse, in one line, a cells record this probe did not write: a task name, an integer seed, a
    fingerprint dict and a score with exactly `TaskScore`'s fields, each of its type."""
    score = record.get("score")
    fields = {field.name: field.type for field in dataclasses.fields(TaskScore)}
    problem = None
    if not (isinstance(record.get("task"), str) and type(record.get("seed")) is int and isinstance(record.get("fingerprint"), dict)):
        problem = "its task, seed or fingerprint is missing or of the wrong type"
    elif not isinstance(score, dict) or set(score) != set(fields):
        problem = "its score does not have the fields of a task score"
    else:
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        wrong = [name for name, ok in (
            ("task", isinstance(score["task"], str)), ("metric", isinstance(score["metric"], str)),
            ("value", number(score["value"])), ("decode", isinstance(score["decode"], str)),
            ("examples", type(score["examples"]) is int), ("invalid", type(score["invalid"]) is int),
            ("metrics", isinstance(score["metrics"], dict) and all(number(v) for v in score["metrics"].values())),
            ("rules", isinstance(score["rules"], dict)),
        ) if not ok]
        if wrong:
            problem = f"its score's {', '.join(wrong)} of the wrong type"
    if problem:
        raise BmtptError(
            f"the few-shot cells file '{path}' holds a record this probe did not write ({problem}): rerun with --force "
            "instead of --resume to start the probe over"
        )


def _run_cells(job: FewshotJob, method: TransferMethod, tasks, data, init_file, fingerprint, done, progress) -> dict[str, list[TaskScore]]:
    """Adapt and score every (task, seed) cell not in `done`; returns each task's scores in seed order."""
    runner = None
    protocol = job.protocol_config
    scores: dict[str, list[TaskScore]] = {}
    tracking = open_tracker(job.report_to, job.output.out, job.settings, resume=job.output.resume)
    with open(job.output.cells, "a", encoding="utf-8") as cells, tracking as tracker:
        for task in tasks:
            scores[task.name] = []
            for seed in job.seeds:
                if (task.name, seed) in done:
                    scores[task.name].append(TaskScore(**done[(task.name, seed)]))
                    continue
                if runner is None:  # load the model only when a cell is left to run
                    runner = load_runner(job.runner, progress=progress)

                def make_init(subset, seed=seed):  # a random init is drawn from this cell's seed
                    return method.start(StartRequest(
                        runner, seed, source=method_source(method, job.init), prompt_length=job.prompt_length,
                        required_length=job.required_length, init_file=init_file,
                    ))

                score = run_cell(runner, task, data[task.name], protocol, seed, make_init, method, job.prior,
                                 tracker=tracker.run(f"{task.name}/seed{seed}")).score
                cells.write(json.dumps({"task": task.name, "seed": seed, "fingerprint": fingerprint, "score": vars(score)}) + "\n")
                cells.flush()
                scores[task.name].append(score)
    return scores


def fewshot_row(job: FewshotJob, task, scores: list[TaskScore], num_examples: int) -> dict:
    """One task's few-shot result: mean and standard deviation over seeds, and every seed's value."""
    values = [score.value for score in scores]
    mean, std = mean_and_std(values)
    return {
        "task": task.name,
        "metric": task.metric,
        "value": mean,
        "std": std,
        "per_seed": dict(zip(map(str, job.seeds), values)),
        "metrics": {name: statistics.fmean(score.metrics[name] for score in scores) for name in task.metrics},
        "decode": scores[0].decode,
        "rules": scores[0].rules,
        "invalid": sum(score.invalid for score in scores),
        "examples": num_examples,
        "split": job.scoring.split,
        "shots": job.shots,
    }
