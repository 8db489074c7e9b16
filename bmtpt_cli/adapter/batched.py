"""Many few-shot cells adapted together: N independent one-task runs in shared passes of the frozen LM.

A few-shot grid runs one (method, k, task) for 40–50 seeds: each cell is a tiny run (k examples, a
batch of at most k a step), and one at a time the frozen T5 sees 16 sequences a pass. `adapt_cells`
steps all N cells at once: every step concatenates the cells' own batches into one encoded batch,
each row under its own cell's composed prompt, and one backward of Σ_i (CE_i / tokens_i + prior_i)
gives every cell exactly the gradient of its own loss (the cells share no parameter, so the sum
only stacks independent losses). Every cell keeps its own `TargetPrompts`, generator, AdamW,
schedule, divergence guard and best-on-dev state, so a cell's run is `adapter.train.adapt`'s for
the same arguments: bit for bit with N = 1, to float32 round-off for N > 1 (the rows are padded to
the group's longest input and target, and the kernels see other shapes).

Dev evaluations and the test split are scored in shared passes as well (`score_cells`,
`scoring.score.predict` with per-example prompts), each cell's predictions scored on its own.
There is no checkpoint or resume inside a group: the cell is the unit a caller writes when it is
finished.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bmtpt_cli.adapter.prompt import PromptModule, TargetPrompts, copies_of
from bmtpt_cli.adapter.train import AdaptConfig, AdaptResult, AdaptStepRecord
from bmtpt_cli.data.sampling import EpochBatches
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.score import TaskScore, predict, score_predictions, score_task, scoring_mode
from bmtpt_cli.runner.runner import IGNORE_INDEX, FrozenT5Runner
from bmtpt_cli.runtime.checkpoint import Interrupted, StepAbandoned, StopRequests
from bmtpt_cli.runtime.divergence import SizeGuard
from bmtpt_cli.runtime.schedule import linear_schedule

SHARED_FIELDS = ("steps", "warmup_steps", "eval_every", "batch_size", "lr_shared", "lr_scales", "weight_decay",
                 "eval_batch_size", "rank_score", "invalid_predictions")
"""The settings every cell of a group must share: one step count and learning-rate schedule, and one
way of scoring the dev examples (they are scored in shared passes)."""


@dataclass(frozen=True)
class CellSpec:
    """One few-shot cell to adapt: its task, training subset, dev examples ([] = keep the last step),
    init (`(l, d)` for `TargetPrompts`, or a method's prompt module), prior centre (None = no prior,
    as its method decides) and config (its own seed)."""

    task: Task
    train: list[TextExample]
    dev: list[TextExample]
    init: torch.Tensor | PromptModule
    prior_mean: torch.Tensor | None
    config: AdaptConfig

    @property
    def length(self) -> int:
        """l, the prompt length of the cell."""
        return self.init.shape[0] if isinstance(self.init, torch.Tensor) else self.init.length

    def describe(self) -> str:
        return f"cell {self.task.name} seed {self.config.seed}"


class _Cell:
    """One cell's running state: what `adapt` keeps in its locals."""

    def __init__(self, runner: FrozenT5Runner, spec: CellSpec):
        config = spec.config
        self.spec = spec
        torch.manual_seed(config.seed)  # as `adapt` (nothing in a step draws from it; kept for parity)
        self.generator = torch.Generator().manual_seed(config.seed)
        module = TargetPrompts(spec.init, [spec.task.name]) if isinstance(spec.init, torch.Tensor) else spec.init
        self.prompts = module.to(runner.device)
        self.prior_mean = None if spec.prior_mean is None else spec.prior_mean.detach().float().to(runner.device)
        self.use_prior = self.prior_mean is not None
        self.optimizer = torch.optim.AdamW(
            self.prompts.parameter_groups(config.lr_shared, config.lr_scales), weight_decay=config.weight_decay,
        )
        self.scheduler = linear_schedule(self.optimizer, warmup_steps=config.warmup_steps, total_steps=config.steps)
        self.guard = SizeGuard(self.prompts.trained(), runner.vocab_embeddings)
        self.batches = EpochBatches(spec.task.name, spec.train, config.batch_size)
        self.evaluates = bool(config.eval_every) and bool(spec.dev)
        self.best_score = float("-inf")
        self.best = AdaptResult(copy.deepcopy(self.prompts).cpu())

    def lower(self) -> str:
        config = self.spec.config
        return (f"{self.spec.describe()}: no artifact written and no checkpoint yet: rerun with a lower --lr-shared "
                f"and --lr-scales (now {config.lr_shared:g} and {config.lr_scales:g})")


def check_group(cells: list[CellSpec]) -> None:
    """Refuse a group whose cells cannot share one schedule (`SHARED_FIELDS`) or one prompt shape."""
    if not cells:
        raise ValueError("adapt_cells needs at least one cell")
    first = cells[0]
    for cell in cells[1:]:
        differ = [name for name in SHARED_FIELDS if getattr(cell.config, name) != getattr(first.config, name)]
        if differ:
            raise BmtptError(
                f"cells adapted together must share {', '.join(SHARED_FIELDS)}: {cell.describe()} differs from "
                f"{first.describe()} in {', '.join(differ)}; run them in separate groups"
            )
        if cell.length != first.length:
            raise BmtptError(f"cells adapted together must have one prompt length: {cell.describe()} has "
                             f"{cell.length}, {first.describe()} {first.length}")


def adapt_cells(
    runner: FrozenT5Runner,
    cells: list[CellSpec],
    *,
    label_style: str = "words",
    on_step: Callable[[int, AdaptStepRecord], None] | None = None,
) -> list[AdaptResult]:
    """Adapt N independent one-task cells together: each step, every cell's own epoch batch in one
    encoded batch under per-row prompts, one backward of the sum of the cells' losses, one AdamW
    update per cell; dev evaluations of all cells in shared passes (N=1 gives exactly
    `adapter.train.adapt`'s result).

    Cell i behaves as `adapt(runner, [task], {task: train}, {task: dev} or {}, init, config,
    prior_mean=..., batches=EpochBatches(task, train, batch_size), label_style=...)`; a cell without
    dev examples keeps its last step. `on_step(i, record)`: cell i's step record (with `dev` on its
    evaluation steps), after every step, in cell order. Returns the cells' results in order.
    """
    check_group(cells)
    config = cells[0].config
    states = [_Cell(runner, spec) for spec in cells]
    step = 0
    with StopRequests(abandon=True) as stop:
        try:
            while step < config.steps:
                records = _step(runner, states, step)
                step += 1
                if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
                    _evaluate(runner, states, records, step, label_style)
                if on_step:
                    for i, record in enumerate(records):
                        on_step(i, record)
                if stop.requested and step < config.steps:
                    raise Interrupted(f"stopped by {stop.requested} after step {step} of a group of {len(cells)} "
                                      "cells: none of them is finished and none is kept")
        except StepAbandoned as abandoned:
            raise Interrupted(f"stopped by {abandoned.signal_name} during step {step + 1} of a group of "
                              f"{len(cells)} cells: none of them is finished and none is kept") from None
    return [state.best if state.evaluates else AdaptResult(copy.deepcopy(state.prompts).cpu(), {}, step)
            for state in states]


def _step(runner: FrozenT5Runner, states: list[_Cell], step: int) -> list[AdaptStepRecord]:
    """One step of every cell (`adapter.train._loss_and_gradients` + the update, per cell)."""
    pairs = [state.batches(state.generator) for state in states]
    copies = [copies_of(state.prompts) for state in states]  # an ensemble cell's batch runs once per member
    sizes = [len(p) * c for p, c in zip(pairs, copies)]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    examples = [e for p, c in zip(pairs, copies) for e in [e for _, e in p] * c]
    batch = runner.encode([e.source for e in examples], [e.target for e in examples])
    row_tokens = (batch.labels != IGNORE_INDEX).sum(dim=1).tolist()
    tokens = [torch.as_tensor(sum(row_tokens[s : s + len(p)]), dtype=torch.float32, device=batch.labels.device)
              for s, p in zip(starts, pairs)]  # one copy's target tokens: each member's loss is its own mean
    priors = [
        state.prompts.prior_term([0] * len(p), state.prior_mean, state.spec.config.sigma) if state.use_prior else torch.zeros(())
        for state, p in zip(states, pairs)
    ]
    plan = runner.pass_plan(1, batch, states[0].prompts.length)
    sources = [e.source for e in examples]
    if not plan.chunked:
        losses = runner.token_losses(_row_prompts(states, starts, sizes, 0, len(batch), sources), batch)  # (B, t)
        ce = [losses[s : s + n].sum() for s, n in zip(starts, sizes)]
        _sum([c / t + p for c, t, p in zip(ce, tokens, priors)]).backward()
        ce = [c.detach() for c in ce]
    else:  # the plan's passes; each cell's gradient accumulated over the passes its rows fall in
        ce = [torch.zeros((), device=batch.input_ids.device) for _ in states]
        for _, rows in plan.chunks():
            part = runner.token_losses(_row_prompts(states, starts, sizes, rows.start, rows.stop, sources), batch.rows(rows))
            terms = []
            for i, (s, n) in enumerate(zip(starts, sizes)):
                lo, hi = max(s, rows.start), min(s + n, rows.stop)
                if lo < hi:
                    piece = part[lo - rows.start : hi - rows.start].sum()
                    terms.append(piece / tokens[i])
                    ce[i] = ce[i] + piece.detach()
            _sum(terms).backward()
        used = [p for state, p in zip(states, priors) if state.use_prior]
        if used:
            _sum(used).backward()
    records = []
    for i, state in enumerate(states):
        loss, prior = ce[i] / tokens[i] / copies[i], priors[i].detach() / copies[i]  # an ensemble's: its members' means
        total = loss + prior
        if not torch.isfinite(total):
            raise BmtptError(f"non-finite loss at adaptation step {step + 1} of {state.lower()}")
        lr = state.scheduler.get_last_lr()[0]
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.guard.check(state.prompts.trained(), step=step + 1, where=state.lower)
        state.scheduler.step()
        records.append(AdaptStepRecord(step=step + 1, loss=float(total), prior=float(prior), lr=lr))
    return records


def _sum(terms: list[torch.Tensor]) -> torch.Tensor:
    """Σ terms (one term: itself, so a group of one backpropagates exactly `adapt`'s loss)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _row_prompts(states: list[_Cell], starts: list[int], sizes: list[int], lo: int, hi: int,
                 sources: list[str]) -> torch.Tensor:
    """Rows lo..hi of the step's per-row prompts `(hi - lo, l, d)`: a fixed cell's composed prompt once
    per of its rows (as `TargetPrompts.forward` stacks them), an ensemble cell's members' prompts
    (each member's once per example), an input-dependent cell's prompts for its rows' inputs
    (`sources`: the step's inputs, all rows)."""
    rows = []
    for state, s, n in zip(states, starts, sizes):
        first, last = max(s, lo), min(s + n, hi)
        if last > first:
            if copies_of(state.prompts) > 1:  # an ensemble: its n rows are its members' prompts, member-major
                rows += list(state.prompts([0] * (n // copies_of(state.prompts)))[first - s : last - s].unbind(0))
            elif state.prompts.fixed:
                rows += [state.prompts.compose(0)] * (last - first)
            else:
                rows += list(state.prompts([0] * (last - first), sources[first:last]).unbind(0))
    return torch.stack(rows)


def _evaluate(runner: FrozenT5Runner, states: list[_Cell], records: list[AdaptStepRecord], step: int,
              label_style: str) -> None:
    """Every evaluating cell's dev metric in shared passes; keep each cell's best state (first best wins)."""
    live = [i for i, state in enumerate(states) if state.evaluates]
    if not live:
        return
    config = states[live[0]].spec.config
    with torch.no_grad():
        prompts = [states[i].prompts.scorer(0) for i in live]
        scores = _score_groups(
            runner, prompts, [states[i].spec.task for i in live], [states[i].spec.dev for i in live],
            batch_size=config.eval_batch_size, label_style=label_style, rank_score=config.rank_score,
            invalid_predictions=config.invalid_predictions,
        )
    for i, score in zip(live, scores):
        state = states[i]
        dev = {state.spec.task.name: score.value}
        records[i].dev = dev
        value = sum(dev.values()) / len(dev)
        if value > state.best_score:
            state.best_score = value
            state.best = AdaptResult(copy.deepcopy(state.prompts).cpu(), dict(dev), step)


def score_cells(
    runner: FrozenT5Runner,
    prompts: list[torch.Tensor],
    task: Task,
    examples: list[TextExample],
    **scoring_options,
) -> list[TaskScore]:
    """Each of N prompts (`(l, d)`, or a prompt function of the inputs) scored on the same `examples`
    (a test split), the fixed ones in shared passes:
    `score_task(runner, prompts[i], task, examples, **scoring_options)` for every i (options:
    decode, batch_size, label_style, rank_score, invalid_predictions)."""
    return _score_groups(runner, list(prompts), [task] * len(prompts), [examples] * len(prompts), **scoring_options)


def score_each_cell(
    runner: FrozenT5Runner,
    prompts: list[torch.Tensor],
    task: Task,
    examples: list[list[TextExample]],
    **scoring_options,
) -> list[TaskScore]:
    """Prompt i scored on its own `examples[i]` (each cell's dev subset), the fixed ones in shared passes:
    `score_task(runner, prompts[i], task, examples[i], **scoring_options)` for every i."""
    return _score_groups(runner, list(prompts), [task] * len(prompts), list(examples), **scoring_options)


def _score_groups(
    runner: FrozenT5Runner,
    prompts: list[torch.Tensor],
    tasks: list[Task],
    examples: list[list[TextExample]],
    *,
    decode: str = "rank",
    batch_size: int = 32,
    label_style: str = "words",
    rank_score: str = "sum",
    invalid_predictions: str = "wrong",
) -> list[TaskScore]:
    """`score_task` of prompt i on `examples[i]` for task `tasks[i]`, for every i: the fixed prompts of one
    task and decode mode are predicted together (each example under its own cell's prompt), then each
    cell's predictions are scored on their own; a prompt function (an input-dependent prompt) is
    scored on its own by `score_task`."""
    results: list[TaskScore | None] = [None] * len(prompts)
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, torch.Tensor):
            results[i] = score_task(runner, prompt, tasks[i], examples[i], decode=decode, batch_size=batch_size,
                                    label_style=label_style, rank_score=rank_score, invalid_predictions=invalid_predictions)
    modes = {i: scoring_mode(runner, tasks[i], examples[i], decode, label_style, rank_score)
             for i, prompt in enumerate(prompts) if isinstance(prompt, torch.Tensor)}  # score_task checked the others
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (mode, _) in modes.items():
        groups.setdefault((tasks[i].name, mode), []).append(i)
    for (_, mode), members in groups.items():
        labels = modes[members[0]][1]
        joined = [e for i in members for e in examples[i]]
        rows = torch.tensor([j for j, i in enumerate(members) for _ in examples[i]], dtype=torch.long)
        stacked = torch.stack([prompts[i].detach() for i in members])  # (P, l, d)
        scores: list[dict[str, float]] = []
        predictions = predict(
            runner, stacked, joined, candidates=labels, decode=mode, batch_size=batch_size, rank_score=rank_score,
            prompt_rows=rows, scores_out=scores,
        )
        start = 0
        for i in members:
            own = slice(start, start + len(examples[i]))
            start += len(examples[i])
            results[i] = score_predictions(tasks[i], examples[i], predictions[own], mode, label_style, rank_score,
                                           invalid_predictions, scores=scores[own] if mode == "rank" else None)
    return results
