"""The few-shot cell (SPEC §4): per task and seed, adapt from a method's init on k training examples
and score on the test split.

The paper's protocol: k examples per task (`shot_sampling="class"`: k per label), one subset per
seed that every method shares (it depends on the seed only), a random init drawn from each cell's
own seed, the learning rates × 1/3 at k = 4 and batches of the k examples without replacement. bmtpt scores
each cell at its best of 10 evaluations on `dev_shots` validation examples (32 by default; 0: the
last step, as the paper), because at high learning rates the last step of one cell is chaotic.
The protocol is written into the report.

`run_cells` runs the cells of one task and protocol together (shared passes of the frozen LM,
`adapter.batched`); the `fewshot` grid (`experiments/grid.py`) and `evaluate --shots`
(`experiments/probe.py`, one column of the grid) both run their cells through it.
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

from bmtpt_cli.adapter.batched import CellSpec, adapt_cells, score_cells, score_each_cell
from bmtpt_cli.adapter.train import AdaptConfig, AdaptStepRecord
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.sampling import kshot, kshot_per_class
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.methods.base import TransferMethod
from bmtpt_cli.methods.init import TargetInit
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.scoring.config import ScoringConfig
from bmtpt_cli.scoring.calibration import TEMPERATURE_GENERATED, temperature_scaling
from bmtpt_cli.scoring.score import TaskScore


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
    calibrate: bool = False  # --calibrate: each cell fits a temperature on its dev examples (SPEC §4)

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
        described = {
            "shots": self.shots,
            "per": self.shot_sampling,
            "subset": "one per seed, shared by every method (seeded permutation of the training split)",
            "lr_factor": self.lr_factor,
            "batches": f"the k-shot examples without replacement, {self.adapt.batch_size} at most per step",
            "steps": self.adapt.steps,
            "selection": self.selection(),
        }
        if self.calibrate:
            described["calibration"] = ("temperature scaling: T fitted per cell on its dev examples (--dev-shots "
                                        f"{self.dev_shots}) by the NLL of softmax(scores / T); the test calibration "
                                        "reported unscaled and scaled")
        return described


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
    of the frozen LM (`adapter.batched`): each is its own `adapter.train.adapt` run on epochs of its
    subset, then scored on the test split, to float32 round-off (bit for bit for a group of one). `on_step(i, record)`: cell i's step records."""
    specs, inits, subsets, owners = [], [], [], []
    for index, cell in enumerate(cells):
        subset = protocol.subset(data.train, cell.seed)
        made = cell.make_init(subset)
        dev = protocol.dev(task, data.validation, cell.seed).get(task.name, [])
        for init in made if isinstance(made, list) else [made]:  # a candidates method: one run per start
            module = cell.method.prompt_module(init, [task.name], runner, cell.seed)
            specs.append(CellSpec(task, subset, dev, module, cell.method.prior_centre(init, cell.prior), protocol.config(cell.seed)))
            inits.append(init)
            owners.append(index)
        subsets.append(subset)
    def forwarded(i: int, record: AdaptStepRecord) -> None:  # a cell's step records are its first run's
        if owners.index(owners[i]) == i:
            on_step(owners[i], record)

    results = adapt_cells(runner, specs, label_style=protocol.label_style, on_step=forwarded if on_step else None)
    chosen = [best_candidate([i for i, owner in enumerate(owners) if owner == index], results, inits)
              for index in range(len(cells))]
    specs = [specs[i] for i, _ in chosen]
    kept = [results[i].prompts.scorer(0) for i, _ in chosen]
    options = dict(label_style=protocol.label_style, **protocol.scoring.options())
    scores = score_cells(runner, kept, task, data.test, **options)
    if protocol.calibrate:  # one task and protocol: every cell is scored the same way
        ranked = scores[0].decode == "rank"
        fits = score_each_cell(runner, kept, task, [spec.dev for spec in specs], **options) if ranked else [None] * len(scores)
        scores = [calibrate_cell(score, fit, spec.dev, data.test) for score, fit, spec in zip(scores, fits, specs)]
    return [CellResult(score, init, subset) for score, (_, init), subset in zip(scores, chosen, subsets)]


def best_candidate(indices: list[int], results: list, inits: list[TargetInit]) -> tuple[int, TargetInit]:
    """Of a cell's runs (`indices` into `results` and `inits`; one unless its method has candidates), the one
    whose kept dev score (the mean of its tasks' dev metrics) is highest, the first on a tie; a cell of several
    candidates records each one's dev score and which was kept in its init's `details`."""
    if len(indices) == 1:
        return indices[0], inits[indices[0]]
    dev = {i: statistics.fmean(results[i].dev_metrics.values()) if results[i].dev_metrics else float("-inf") for i in indices}
    best = max(indices, key=lambda i: (dev[i], -indices.index(i)))
    record = [{"chosen": inits[i].details.get("chosen"), "rank": inits[i].details.get("rank"), "dev": dev[i],
               "best_step": results[i].best_step} for i in indices]
    details = inits[best].details | {"method": "retrieve-best", "candidates": record, "kept_rank": inits[best].details.get("rank")}
    return best, dataclasses.replace(inits[best], details=details)


def calibrate_cell(score: TaskScore, fit: TaskScore | None, dev: list[TextExample], test: list[TextExample]) -> TaskScore:
    """`score` (a cell's score on `test`) with temperature scaling added to its calibration: T fitted on
    `fit`, the cell's kept prompt scored on its own `dev` examples (`scoring.calibration.temperature_scaling`);
    a generated task's temperature is said to be undefined."""
    if score.decode != "rank" or score.label_scores is None or fit is None:
        added = {"temperature": TEMPERATURE_GENERATED}
    else:
        added = temperature_scaling(fit.label_scores or [], [e.target for e in dev], score.label_scores,
                                    [e.target for e in test], fitted_on="validation, the cell's dev subset")
    return dataclasses.replace(score, calibration={**score.calibration, **added})


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) over seeds."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


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
