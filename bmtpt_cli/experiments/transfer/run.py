"""`bmtpt transfer-matrix` as one function: a per-task prompts folder → the matrices of SPEC §5 → an output folder."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli.adapter.train import AdaptConfig
from bmtpt_cli.artifacts import check_model_fit, file_sha256
from bmtpt_cli.artifacts.task_prompts import TaskPrompt, read_task_prompts
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.config import ScoringConfig
from bmtpt_cli.scoring.neurons import pre_activation_modules, probe_token_id
from bmtpt_cli.scoring.score import TaskScore
from bmtpt_cli.scoring.similarity import ALIGNED_MEASURES
from bmtpt_cli.runner.load import RunnerConfig, check_step_fits, load_runner
from bmtpt_cli.runner.model import TINY_MODEL
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.runtime.progress import SILENT, Progress
from bmtpt_cli.runtime.provenance import provenance
from bmtpt_cli.runtime.tracking import open_tracker
from bmtpt_cli.experiments.transfer.matrix import (
    PER_CELL,
    RANDOM,
    Matrix,
    all_invalid,
    counts,
    defined,
    error_reduction,
    grid,
    neuron_overlaps,
    relative_scores,
    scorer,
    similarity_matrices,
    tuned_scores,
    zero_shot_scores,
)
from bmtpt_cli.experiments.transfer.correlation import IndicatorCorrelation, correlations
from bmtpt_cli.experiments.transfer.write import staged_folder, write_correlations, write_matrix

FLAG = "--prompts-dir"


@dataclass(frozen=True)
class TransferMatrixJob:
    """Source prompts × target tasks from one per-task prompts folder (SPEC §5).

    `tasks` / `sources` None: every task in the folder. `adapt` None: no transfer with tuning
    (`--tune` unset). `required_length`: a prompt length the user asked for, which every prompt used must have.
    """

    prompts_dir: Path
    tasks: list[str] | None
    sources: list[str] | None
    required_length: int | None
    runner: RunnerConfig
    data: DataConfig
    scoring: ScoringConfig
    adapt: AdaptConfig | None
    prior: bool  # --prior: the source-initialised tuning runs' prior (method from-prompts)
    out: Path
    force: bool
    settings: dict
    neurons: bool  # --neurons: neuron stimulation (SPEC §5d)
    neuron_stack: str  # decoder | encoder: the stack whose feed-forward neurons are read
    neuron_windows: int  # layer windows besides all layers
    report_to: str = "none"  # --report-to (with --tune): each tuning run's step records also go there


@dataclass
class TransferReport:
    """The matrices written, in order, the indicators' correlations with transfer, and the folder they are in."""

    out: Path
    matrices: list[Matrix]
    model: str
    correlations: list[IndicatorCorrelation]


def run_transfer_matrix(job: TransferMatrixJob, progress: Progress = SILENT) -> TransferReport:
    """Score every source prompt on every target (and with `adapt`, tune from it), compute the
    transferability indicators (prompt similarities, neuron stimulation) and their correlations with
    the transfer, and write each matrix as CSV, JSON and a heatmap PNG into `job.out`, the
    correlations as `correlations.{csv,json,md}` and one scatter plot per indicator in `scatter/`.

    The output folder is checked (and its lock taken) first, so a bad `--out` shows before any work."""
    if job.data.label_style != "words":
        raise BmtptError(
            "--label-style digits makes '0' mean a different class in every task, so prompts cannot be compared "
            "across tasks: drop --label-style (transfer-matrix scores label words)"
        )
    with staged_folder(job.out, force=job.force) as folder:
        matrices, indicators, common = _compute(job, progress)
        transfers = [matrix for matrix in matrices if matrix.name in CORRELATED]
        found = correlations(indicators, transfers)
        for matrix in matrices:
            write_matrix(folder, matrix, common)
        notes = [TINY_NOTE] if job.runner.model == TINY_MODEL else []
        write_correlations(folder, found, {m.name: m for m in matrices}, common | {"notes": notes})
    return TransferReport(job.out, matrices, job.runner.model, found)


CORRELATED = ("zero_shot_relative", "error_reduction")
"""The transfer matrices every indicator is correlated with (SPEC §5e)."""


def _compute(job: TransferMatrixJob, progress: Progress) -> tuple[list[Matrix], list[Matrix], dict]:
    """Every matrix of the job, which of them are indicators (similarities, neuron stimulation), and
    the record fields they share (settings, prompts, scoring rules, provenance)."""
    prompts = read_task_prompts(job.prompts_dir, flag=FLAG)
    targets, sources = one_order(resolve_tasks(job.tasks or [name for name in prompts]), _sources(job, prompts))
    missing = [task.name for task in targets if task.name not in prompts]
    if missing:
        raise BmtptError(
            f"target task(s) {', '.join(missing)} have no prompt of their own in {FLAG} '{job.prompts_dir}' "
            f"(zero-shot transfer is relative to it): train one with `bmtpt source --per-task --tasks {','.join(missing)}` "
            f"or `bmtpt adapt --init random --tasks {missing[0]} --out {job.prompts_dir}/{missing[0]}.safetensors`, "
            "or drop it from --tasks"
        )
    splits = (job.scoring.split, "train") if job.adapt else (job.scoring.split,)
    data = job.data.splits(targets, *splits)  # data problems show before the model loads
    runner = load_runner(job.runner, progress=progress)
    used = {name: prompts[name] for name in dict.fromkeys([*sources, *(task.name for task in targets)])}
    for entry in used.values():
        check_model_fit(entry.path, entry.metadata, d_model=runner.d_model, prompt_length=job.required_length)
        made_with = entry.metadata.get("bmtpt.model")
        if made_with and made_with != job.runner.model:
            progress.note(f"warning: '{entry.path}' was made with model {made_with}, scoring with {job.runner.model}")
    indicators = _indicators(job, runner, {name: entry.prompt for name, entry in used.items()}, progress)  # cheap: first
    score = scorer(runner, data[job.scoring.split], job.data.label_style, job.scoring.options())
    source_prompts = {name: prompts[name].prompt for name in sources}
    own_prompts = {task.name: prompts[task.name].prompt for task in targets}
    target_names = [task.name for task in targets]

    cells_total = len(sources) * len(targets) + sum(task.name not in source_prompts for task in targets)
    with progress.bar("zero-shot", cells_total) as update:
        done = [0]

        def cell(source: str, target: str, value: TaskScore) -> None:
            done[0] += 1
            update(done[0], f"{source} → {target}: {value.metric} {value.value:.3f}")

        zero, own = zero_shot_scores(score, source_prompts, targets, own_prompts, on_cell=cell)
    matrices = zero_shot_matrices(zero, own, sources, targets)

    if job.adapt:
        length = max(prompt.shape[0] for prompt in [*source_prompts.values(), *own_prompts.values()])
        check_step_fits(
            runner, [e for task in targets for e in data["train"][task.name][:500]], sequences=job.adapt.batch_size,
            prompt_length=length, trainable_elements=length * runner.d_model + length + runner.d_model,
            what=f"tuning batches of {job.adapt.batch_size} sequences of {{length}} tokens",
            lower="--batch-size or --max-source-length (or pass --grad-checkpointing)",
        )
        steps = job.adapt.steps
        runs = len(targets) * (len(sources) + 1)
        tracking = open_tracker(job.report_to, job.out, job.settings)
        with progress.bar(f"tune ({steps} steps per run)", runs * steps) as update, tracking as tracker:
            completed = [0]

            def step(source: str, target: str, at: int) -> None:
                completed[0] += 1
                update(completed[0], f"run {(completed[0] - 1) // steps + 1}/{runs}: {source} → {target}, step {at}")

            tuned, random = tuned_scores(
                runner, score, source_prompts, targets, data["train"], job.adapt, prior=job.prior,
                random_length={task.name: own_prompts[task.name].shape[0] for task in targets},
                label_style=job.data.label_style, on_step=step, tracker=tracker,
            )
        matrices += tuned_matrices(tuned, random, sources, targets, job.adapt, job.prior)

    matrices += indicators

    for matrix in matrices:
        matrix.notes = matrix_notes(matrix, job.runner.model) + matrix.notes
    common = {
        "sources": sources,
        "targets": target_names,
        "prompts": {name: {"path": str(entry.path), "sha256": file_sha256(entry.path)} for name, entry in used.items()},
        "model": job.runner.model,
        "scoring": {"decode": job.scoring.decode, "split": job.scoring.split, "rank_score": job.scoring.rank_score,
                    "invalid_predictions": job.scoring.invalid_predictions},
        "settings": job.settings,
        "data": job.data.provenance(targets),
        "provenance": provenance(runner.device),
    }
    return matrices, indicators, common


def _indicators(job: TransferMatrixJob, runner: FrozenT5Runner, prompts: dict[str, torch.Tensor], progress: Progress) -> list[Matrix]:
    """The transferability indicators over `prompts` (sources ∪ targets): every prompt similarity (SPEC §5c)
    and, with `job.neurons`, neuron stimulation over all layers and each layer window (SPEC §5d)."""
    names = list(prompts)
    indicators = [similarity_record(measure, values, names) for measure, values in similarity_matrices(prompts).items()]
    if not job.neurons:
        return indicators
    with progress.bar(f"neurons ({job.neuron_stack})", len(names)) as update:
        done = [0]

        def stimulated(name: str) -> None:
            done[0] += 1
            update(done[0], name)

        overlaps = neuron_overlaps(runner, prompts, job.neuron_stack, job.neuron_windows, on_prompt=stimulated)
    layers = len(pre_activation_modules(runner.model, job.neuron_stack))
    probe = runner.tokenizer.convert_ids_to_tokens(probe_token_id(runner.tokenizer))
    return indicators + [neuron_record(values, names, job.neuron_stack, window, layers, probe)
                         for window, values in overlaps.items()]


def _sources(job: TransferMatrixJob, prompts: dict[str, TaskPrompt]) -> list[str]:
    """The source prompts' task names: `job.sources` (each must be in the folder, once) or every task there."""
    if not job.sources:
        return list(prompts)
    names = [name.strip().lower() for name in job.sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BmtptError(f"--sources names {', '.join(repeated)} more than once: give each source once")
    unknown = [name for name in names if name not in prompts]
    if unknown:
        raise BmtptError(
            f"--sources {', '.join(unknown)} not in {FLAG} '{job.prompts_dir}' (it holds {', '.join(prompts)}): "
            "drop them or add their prompts to the folder"
        )
    return names


def one_order(targets: list, sources: list[str]) -> tuple[list, list[str]]:
    """Targets and sources in one order, so that a task's own prompt sits on the diagonal: the tasks
    that are both (in the --tasks order) first on both axes, then the other targets (columns) and
    the other sources (rows), each in their given order."""
    names = [task.name for task in targets]
    shared = [name for name in names if name in sources]
    ordered_targets = [task for task in targets if task.name in shared] + [task for task in targets if task.name not in shared]
    return ordered_targets, shared + [name for name in sources if name not in shared]


TINY_NOTE = "model 'tiny' has random weights: these scores are chance level (the run checks the pipeline, not the method)"


def matrix_notes(matrix: Matrix, model: str) -> list[str]:
    """The caveats a matrix's files carry: chance-level scores on `tiny`, and its invalid generations."""
    notes = []
    if model == TINY_MODEL:
        notes.append(TINY_NOTE)
    if matrix.invalid is None:
        return notes
    cells = [(row, column, n, total) for row, invalid, examples in zip(matrix.rows, matrix.invalid, matrix.examples)
             for column, n, total in zip(matrix.columns, invalid, examples) if n]
    if not cells:
        return notes + ["invalid generations: none"]
    undefined = sum(all_invalid(n, total) for *_, n, total in cells)
    notes.append(
        f"invalid generations (predictions that are none of the label words) in {len(cells)} of "
        f"{len(matrix.rows) * len(matrix.columns)} cells; {undefined} with every generation invalid are undefined (—)"
    )
    notes.append(f"{PER_CELL} (source -> target): " + "; ".join(
        f"{row} -> {column}: {n}/{total} invalid" for row, column, n, total in cells))
    return notes


def _rules(scores: dict[str, TaskScore]) -> dict:
    """What produced each target's scores: its metric, the decode rule used, its rules, the example count."""
    return {
        target: {"metric": value.metric, "decode": value.decode, "rules": value.rules, "examples": value.examples}
        for target, value in scores.items()
    }


def zero_shot_matrices(zero: dict, own: dict[str, TaskScore], sources: list[str], targets) -> list[Matrix]:
    """(a) the zero-shot scores and the same relative to each target's own prompt (SPEC §5a)."""
    columns = [task.name for task in targets]
    scores = grid(zero, sources, columns)
    invalid, examples = counts(zero, sources, columns)
    own_values = [defined(own[name]) for name in columns]
    details = {"own_scores": {name: own[name].value for name in columns}, "per_target": _rules(own),
               "own_invalid": {name: f"{own[name].invalid}/{own[name].examples}" for name in columns},
               "all_metrics": {f"{s} -> {t}": zero[(s, t)].metrics for s in sources for t in columns}}
    return [
        Matrix(
            name="zero_shot", title="Zero-shot transfer: each source prompt scored as it is on each target",
            description="the target's main metric (per_target) for the source prompt used unchanged on the target",
            unit="score (target's main metric)", rows=sources, columns=columns, values=scores, cell_format=".3f",
            extra=details, invalid=invalid, examples=examples,
        ),
        Matrix(
            name="zero_shot_relative",
            title="Zero-shot transfer relative to the target's own prompt (%; diagonal = 100)",
            description="100 * score(source prompt on target) / score(target's own prompt on target); null where the own score is 0",
            unit="% of the target's own prompt", rows=sources, columns=columns,
            values=relative_scores(scores, own_values), cell_format=".1f", extra=details, invalid=invalid,
            examples=examples,
        ),
    ]


def tuned_matrices(tuned: dict, random: dict[str, TaskScore], sources: list[str], targets, config: AdaptConfig,
                   prior: bool) -> list[Matrix]:
    """(b) transfer with tuning: the tuned scores and the relative error reduction over random-init PT (SPEC §5b)."""
    columns = [task.name for task in targets]
    rows = [*sources, RANDOM]  # the random-init baseline as the last row
    steps = f"{config.steps} step" + ("s" if config.steps != 1 else "")
    cells = tuned | {(RANDOM, name): random[name] for name in columns}
    scores = grid(cells, rows, columns)
    invalid, examples = counts(cells, rows, columns)
    random_values = scores[-1]
    details = {
        "random_init_scores": {name: random[name].value for name in columns},
        "per_target": _rules(random),
        "tuning": {
            "steps": config.steps, "seed": config.seed, "selection": "last step", "warmup_steps": config.warmup_steps,
            "source init": "W = the source prompt, a = b = 1; prior mean = the source prompt"
                           + ("" if prior else " (prior dropped: --no-prior)")
                           + ", as `bmtpt adapt --init DIR/<source>.safetensors`",
            "random init": "l vocabulary embeddings drawn from the seed, no prior (vanilla prompt tuning, `bmtpt adapt --init random`)",
        },
    }
    return [
        Matrix(
            name="tuned", title=f"Transfer with tuning: target score after {steps} from each source prompt",
            description="the target's main metric after adapting from the source prompt (last row: from a random init)",
            unit="score (target's main metric)", rows=rows, columns=columns, values=scores, cell_format=".3f", extra=details,
            invalid=invalid, examples=examples,
        ),
        Matrix(
            name="error_reduction",
            title=f"Transfer with tuning ({steps}): relative error reduction over random-init PT (%)",
            description="100 * (err_random - err_source) / err_random, err = 1 - score (SPoT); null where err_random is 0; "
                        "the last row is the random-init baseline itself (0 by definition)",
            unit="relative error reduction (%)", rows=rows, columns=columns,
            values=error_reduction(scores, random_values), cell_format=".1f", centre=0.0, extra=details,
            invalid=invalid, examples=examples,
        ),
    ]


SIMILARITIES = {  # measure -> (title, formula, unit, cell format)
    "mean": ("Task-embedding similarity: cosine of the prompts' mean tokens", "cos(mean_i e1_i, mean_j e2_j)",
             "cosine similarity", ".2f"),
    "tokens": ("Task-embedding similarity: mean cosine over all token pairs", "(1/(l1 l2)) sum_i sum_j cos(e1_i, e2_j)",
               "cosine similarity", ".2f"),
    "euclidean": ("Prompt similarity: 1 / (1 + Euclidean distance of the flattened prompts)",
                  "1 / (1 + ||vec(e1) - vec(e2)||)", "1 / (1 + distance)", ".3g"),
    "euclidean_tokens": ("Prompt similarity: mean over tokens i of 1 / (1 + Euclidean distance of token i)",
                         "(1/l) sum_i 1 / (1 + ||e1_i - e2_i||)", "1 / (1 + distance), mean over tokens", ".3g"),
    "cosine": ("Prompt similarity: cosine of the flattened prompts", "cos(vec(e1), vec(e2))", "cosine similarity", ".2f"),
}
LENGTHS_DIFFER = "null where the two prompts differ in length (this measure compares token i with token i)"


def similarity_record(measure: str, values: list[list[float]], names: list[str]) -> Matrix:
    """(c) one similarity measure's square matrix over sources ∪ targets (SPEC §5c)."""
    title, formula, unit, cell_format = SIMILARITIES[measure]
    notes = [LENGTHS_DIFFER] if measure in ALIGNED_MEASURES and any(math.isnan(v) for row in values for v in row) else []
    return Matrix(
        name=f"similarity_{measure}", title=title, description=f"{formula} of the two tasks' prompts",
        unit=unit, rows=names, columns=names, values=values, row_label="task prompt",
        column_label="task prompt", cell_format=cell_format, extra={"measure": measure}, mark_own=False, notes=notes,
    )


def neuron_record(values: list[list[float]], names: list[str], stack: str, window: tuple[int, int] | None,
                  layers: int, probe: str) -> Matrix:
    """(d) neuron stimulation over all layers of `stack` (`window` None) or the layers [start, stop) of
    `window`, a square matrix over sources ∪ targets (SPEC §5d)."""
    if window is None:
        name, which = "neurons_all", f"all {layers} layers"
    else:
        first, last = window[0] + 1, window[1]  # 1-based, inclusive
        name = f"neurons_layers_{first}-{last}" if last > first else f"neurons_layer_{first}"
        which = f"layers {first}-{last} of {layers}" if last > first else f"layer {first} of {layers}"
    position = "its first position (the start token)" if stack == "decoder" else "position l (the probe token after the prompt)"
    return Matrix(
        name=name, title=f"Neuron stimulation ({stack}, {which}): overlap of the activated feed-forward neurons",
        description=f"cosine of the two prompts' binary activation vectors (feed-forward pre-activation > 0, {stack} "
                    f"{which}, read at {position}; the prompt followed by the probe input {probe}); null where a prompt activates none",
        unit="cosine of the active-neuron patterns", rows=names, columns=names, values=values, row_label="task prompt",
        column_label="task prompt", cell_format=".2f", mark_own=False,
        extra={"neurons": {"stack": stack, "layers": [window[0] + 1, window[1]] if window else [1, layers],
                           "position": 0 if stack == "decoder" else "l", "probe": probe}},
    )
