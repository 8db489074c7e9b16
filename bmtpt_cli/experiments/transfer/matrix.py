"""The transfer matrices of SPEC §5: what each cell holds and how it is computed.

Rows are source prompts, columns target tasks (the similarity matrices are square over both):

- (a) zero-shot transfer (Su et al. 2022): each source prompt scored as it is on each target, and
  that score relative to the target's own prompt, ×100 (so the diagonal is 100);
- (b) transfer with tuning (SPoT, Vu et al. 2022): each target adapted from each source prompt
  and, once, from a random init; the relative error reduction over the random init,
  100 · (err_random − err_source) / err_random with err = 1 − score;
- (c) similarity of the prompts, by every measure of `scoring.similarity`;
- (d) neuron stimulation: the overlap of the feed-forward neurons each prompt activates (`scoring.neurons`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bmtpt_cli.adapter import train as adapter_train
from bmtpt_cli.methods.base import StartRequest
from bmtpt_cli.methods.init import TargetInit
from bmtpt_cli.methods.registry import METHODS
from bmtpt_cli.adapter.train import AdaptConfig, AdaptStepRecord
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.scoring.score import TaskScore, score_task
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.scoring.neurons import active_neurons, layer_windows, overlap_matrix
from bmtpt_cli.scoring.similarity import ALL_MEASURES, similarity_matrix

NAN = float("nan")


@dataclass
class Matrix:
    """One matrix as it is written: values `(rows, columns)` (NaN: undefined) and what they mean."""

    name: str  # file stem: NAME.csv, NAME.json, NAME.png
    title: str  # the heatmap's title
    description: str  # what a cell holds, in one sentence
    unit: str  # the colour bar's label
    rows: list[str]
    columns: list[str]
    values: list[list[float]]  # (rows, columns)
    row_label: str = "source prompt"
    column_label: str = "target task"
    cell_format: str = ".1f"  # how the heatmap prints a value
    centre: float | None = None  # a diverging colour map centred here (None: sequential)
    extra: dict = field(default_factory=dict)  # JSON-able details (own scores, random-init scores, …)
    invalid: list[list[int]] | None = None  # (rows, columns): generated predictions that are no label word
    examples: list[list[int]] | None = None  # (rows, columns): the examples each cell scored
    notes: list[str] = field(default_factory=list)  # caveats every file of the matrix carries (CSV, JSON, PNG)
    mark_own: bool = True  # outline the cells where the row's prompt is the column task's own

    def value(self, row: str, column: str) -> float:
        """The cell of `row` (a source) and `column` (a target)."""
        return self.values[self.rows.index(row)][self.columns.index(column)]


def relative_scores(scores: list[list[float]], own: list[float]) -> list[list[float]]:
    """100 · score(source → target) / score(target's own prompt → target); NaN where the own score is 0."""
    return [[100.0 * (value / base) if base != 0 else NAN for value, base in zip(row, own)] for row in scores]  # v/v = 1 exactly


def error_reduction(tuned: list[list[float]], random: list[float]) -> list[list[float]]:
    """SPoT's relative error reduction, ×100: (err_random − err_source) / err_random, err = 1 − score.

    NaN where random-init prompt tuning already makes no error (nothing left to reduce).
    """
    reductions = []
    for row in tuned:
        cells = []
        for value, base in zip(row, random):
            err_random, err_source = 1.0 - base, 1.0 - value
            cells.append(100.0 * ((err_random - err_source) / err_random) if err_random != 0 else NAN)
        reductions.append(cells)
    return reductions


def similarity_matrices(prompts: dict[str, torch.Tensor]) -> dict[str, list[list[float]]]:
    """Each measure's `(n, n)` prompt similarity over `prompts` (in their order), as float64 lists."""
    return {measure: similarity_matrix(prompts, measure).tolist() for measure in ALL_MEASURES}


def neuron_overlaps(
    runner: FrozenT5Runner,
    prompts: dict[str, torch.Tensor],
    stack: str,
    windows: int,
    on_prompt: Callable[[str], None] | None = None,
) -> dict[tuple[int, int] | None, list[list[float]]]:
    """Neuron stimulation (SPEC §5d): each prompt's active feed-forward neurons of `stack`, one pass per
    prompt, and their `(n, n)` binary cosine over all layers (key None) and over each of `windows`
    contiguous layer windows [start, stop) (none when `windows` is 1 or the stack has one layer)."""
    active = {}
    for name, prompt in prompts.items():
        active[name] = active_neurons(runner, prompt, stack)  # (L, d_ff) bool
        if on_prompt:
            on_prompt(name)
    layers = next(iter(active.values())).shape[0] if active else 0
    bounds = layer_windows(layers, windows) if windows > 1 and layers > 1 else []
    return {None: overlap_matrix(active)} | {window: overlap_matrix(active, window) for window in bounds}


Scorer = Callable[[torch.Tensor, Task], TaskScore]
"""`score(prompt (l, d), target task) → TaskScore` with the run's scoring rules and split."""


def scorer(runner: FrozenT5Runner, examples: dict[str, list[TextExample]], label_style: str, options: dict) -> Scorer:
    """A `Scorer` over each target's examples: `score_task` with `options` (decode, rank_score, …)."""

    def score(prompt: torch.Tensor, task: Task) -> TaskScore:
        with torch.no_grad():
            return score_task(runner, prompt, task, examples[task.name], label_style=label_style, **options)

    return score


def zero_shot_scores(
    score: Scorer,
    sources: dict[str, torch.Tensor],
    targets: list[Task],
    own: dict[str, torch.Tensor],
    on_cell: Callable[[str, str, TaskScore], None] | None = None,
) -> tuple[dict[tuple[str, str], TaskScore], dict[str, TaskScore]]:
    """Every source prompt scored as it is on every target, and each target's own prompt on it.

    Returns ((source, target) → score, target → own score). A target that is also a source is
    scored once: its own score is its diagonal cell, so the relative diagonal is exactly 100.
    """
    cells: dict[tuple[str, str], TaskScore] = {}
    for task in targets:
        for name, prompt in sources.items():
            cells[(name, task.name)] = score(prompt, task)
            if on_cell:
                on_cell(name, task.name, cells[(name, task.name)])
    own_scores = {}
    for task in targets:
        if task.name in sources:
            own_scores[task.name] = cells[(task.name, task.name)]
        else:
            own_scores[task.name] = score(own[task.name], task)
            if on_cell:
                on_cell(f"{task.name} (own)", task.name, own_scores[task.name])
    return cells, own_scores


RANDOM = "random init"


def tuned_scores(
    runner: FrozenT5Runner,
    score: Scorer,
    sources: dict[str, torch.Tensor],
    targets: list[Task],
    train: dict[str, list[TextExample]],
    config: AdaptConfig,
    *,
    prior: bool,
    random_length: dict[str, int],
    label_style: str,
    on_step: Callable[[str, str, int], None] | None = None,
    tracker=None,
) -> tuple[dict[tuple[str, str], TaskScore], dict[str, TaskScore]]:
    """Transfer with tuning: each target adapted for `config.steps` steps from each source prompt, and
    from a random vocabulary init of `random_length[target]` tokens (vanilla prompt tuning), then scored.

    A source-initialised run is `bmtpt adapt --init DIR/<source>.safetensors` on the target (method
    from-prompts): W starts at the source prompt, which is also the prior mean (kept or dropped by
    `prior`, --prior); the random-init run is method pt (no prior). Every run uses `config.seed`; the last step is scored.
    `tracker` (`runtime.tracking.Tracker`): each run's step records also go there, as the run `SOURCE -> TARGET`.
    Returns ((source, target) → score, target → random-init score).
    """
    cells: dict[tuple[str, str], TaskScore] = {}
    random_scores: dict[str, TaskScore] = {}
    for task in targets:
        random = METHODS["pt"].start(StartRequest(runner, config.seed, prompt_length=random_length[task.name]))
        runs = [(RANDOM, METHODS["pt"], random)] + [
            (name, METHODS["from-prompts"], TargetInit(prompt, prompt, name, "", None)) for name, prompt in sources.items()
        ]
        for name, method, start in runs:

            def show(record: AdaptStepRecord, name=name) -> None:
                if on_step:
                    on_step(name, task.name, record.step)

            result = adapter_train.adapt(
                runner, [task], {task.name: train[task.name]}, {}, method.prompt_module(start, [task.name], runner, config.seed),
                dataclasses.replace(config, eval_every=None), prior_mean=method.prior_centre(start, prior),
                label_style=label_style, on_step=show,
                files=RunFiles(tracker=tracker.run(f"{name} -> {task.name}")) if tracker else None,  # --report-to
            )
            value = score(result.prompts.scorer(0), task)
            if name == RANDOM:
                random_scores[task.name] = value
            else:
                cells[(name, task.name)] = value
    return cells, random_scores


def defined(score: TaskScore) -> float:
    """The main metric, or NaN when every generated prediction was invalid (none of the label words):
    then the metric (0 under `--invalid-predictions wrong`) says nothing about the prompt."""
    return NAN if score.examples and score.invalid >= score.examples else score.value


def grid(cells: dict[tuple[str, str], TaskScore], rows: list[str], columns: list[str]) -> list[list[float]]:
    """The main-metric values of `cells` laid out `(rows, columns)` (NaN: every generation invalid)."""
    return [[defined(cells[(row, column)]) for column in columns] for row in rows]


def counts(cells: dict[tuple[str, str], TaskScore], rows: list[str], columns: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """The invalid generations and the examples of `cells`, each laid out `(rows, columns)`."""
    return ([[cells[(row, column)].invalid for column in columns] for row in rows],
            [[cells[(row, column)].examples for column in columns] for row in rows])


def all_invalid(invalid: int, examples: int) -> bool:
    """Whether a cell's every generated prediction was invalid (its value is undefined)."""
    return examples > 0 and invalid >= examples


PER_CELL = "invalid per cell"
"""How the note listing every cell's invalid generations begins."""


def invalid_text(invalid: int, examples: int) -> str:
    """How an all-invalid cell is shown: `— (139/139 invalid)`, never as a score of 0."""
    return f"— ({invalid}/{examples} invalid)"


def finite(values: list[list[float]]) -> list[float]:
    """The finite values of a matrix, row-major."""
    return [v for row in values for v in row if not math.isnan(v)]
