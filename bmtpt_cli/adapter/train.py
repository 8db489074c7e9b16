"""The adaptation loop: train W, a_k, b_k on the target tasks' cross-entropy plus the prior term.

Reads top to bottom: the prompt module (`TargetPrompts` from an init tensor, or a method's own
module, `adapter.prompt.PromptModule`) → (resume) → steps of mixed target batches,
dev evaluation every `eval_every` steps keeping the best state → `AdaptResult`. Resume, checkpoints,
the step log and Ctrl-C are `runtime.loop.TrainingLoop`'s.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from bmtpt_cli.adapter import defaults as paper
from bmtpt_cli.adapter.prompt import PromptModule, TargetPrompts, copies_of
from bmtpt_cli.data.sampling import mixed_batch
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.score import score_task
from bmtpt_cli.runner.runner import FrozenT5Runner, target_units
from bmtpt_cli.runtime.config_rules import (
    DECAY, NON_NEGATIVE, POSITIVE, POSITIVE_OR_NONE, RATE, check_config_values, one_of,
)
from bmtpt_cli.runtime.distributed import SINGLE, Distributed, sum_gradients
from bmtpt_cli.runtime.divergence import SizeGuard
from bmtpt_cli.runtime.loop import RunFiles, TrainingLoop, config_fingerprint
from bmtpt_cli.runtime.resume_checks import check_best
from bmtpt_cli.runtime.schedule import linear_schedule


@dataclass(frozen=True)
class AdaptConfig:
    """What an adaptation run computes; all fields but `checkpoint_every` change the result.

    Built from `bmtpt adapt`'s (or the few-shot probe's) settings by name; defaults and help texts
    live there. Whether a run has a prior is not a setting of the loop: the method decides it
    (`methods.base.TransferMethod.prior_centre`) and the loop applies the centre it is given.
    """

    steps: int
    batch_size: int
    lr_shared: float  # W
    lr_scales: float  # a_k, b_k
    sigma: float  # the prior's σ, when the method gives the run a prior centre
    warmup_steps: int
    weight_decay: float
    eval_every: int | None  # None: no dev evaluation, keep the last state
    eval_batch_size: int
    rank_score: str  # how dev scoring ranks candidates: sum | mean
    invalid_predictions: str  # wrong | negative (generation only)
    mixing_cap: int | None
    seed: int
    checkpoint_every: int

    def __post_init__(self):
        check_config_values(self, {
            "steps": POSITIVE, "batch_size": POSITIVE, "lr_shared": RATE, "lr_scales": RATE,
            "sigma": (lambda v: isinstance(v, (int, float)) and paper.SIGMA_MIN <= v < math.inf, f"at least {paper.SIGMA_MIN:g}"),
            "warmup_steps": NON_NEGATIVE, "weight_decay": DECAY, "eval_every": POSITIVE_OR_NONE, "eval_batch_size": POSITIVE,
            "rank_score": one_of("sum", "mean"), "invalid_predictions": one_of("wrong", "negative"),
            "mixing_cap": POSITIVE_OR_NONE, "seed": NON_NEGATIVE, "checkpoint_every": POSITIVE,
        })
        if self.warmup_steps and self.warmup_steps >= self.steps:
            raise BmtptError(
                f"AdaptConfig.warmup_steps = {self.warmup_steps} is not shorter than steps = {self.steps}: the learning "
                "rate would still be rising at the last step; give a warm-up below steps (0 for none)"
            )

    def fingerprint(self) -> dict:
        """The settings a checkpoint must agree on to be resumed."""
        return config_fingerprint(self)


@dataclass
class AdaptResult:
    """The kept (best-on-dev, or last) target prompts and their dev metrics."""

    prompts: PromptModule  # TargetPrompts for the prompt-tuning family
    dev_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int = 0


@dataclass
class AdaptStepRecord:
    step: int
    loss: float  # cross-entropy + prior
    prior: float
    lr: float
    dev: dict[str, float] | None = None  # filled on evaluation steps


def evaluate_dev(
    runner: FrozenT5Runner,
    prompts: PromptModule,
    tasks: list[Task],
    dev_by_task: dict[str, list[TextExample]],
    batch_size: int,
    label_style: str = "words",
    rank_score: str = "sum",
    invalid_predictions: str = "wrong",
) -> dict[str, float]:
    """Each task's main dev metric with its own composed prompt (rank scoring where possible)."""
    with torch.no_grad():
        return {
            task.name: score_task(
                runner, prompts.scorer(k), task, dev_by_task[task.name], batch_size=batch_size,
                label_style=label_style, rank_score=rank_score, invalid_predictions=invalid_predictions,
            ).value
            for k, task in enumerate(tasks)
        }


def _loss_and_gradients(
    runner: FrozenT5Runner,
    prompts: PromptModule,
    pairs: list[tuple[str, TextExample]],
    task_index: dict[str, int],
    prior_mean: torch.Tensor | None,
    config: AdaptConfig,
    dist: Distributed,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backpropagate one batch's loss into the prompts; returns (cross-entropy, prior term), detached.

    An ensemble (`prompts.copies` = M members) runs the batch once per member and backpropagates the
    sum of its members' losses, so each member gets exactly the gradient of its own loss (they share
    no parameter); the returned values are the members' means.

    Data-parallel: each process scores its share of the batch; token-loss sums and gradients are
    added up over the processes, so every one holds the full batch's gradient. The prior term is
    computed on every process for the whole batch and enters each process's gradient divided by
    the number of processes.
    """
    task_ids = [task_index[name] for name, _ in pairs]
    shard = dist.shard(pairs)
    batch = runner.encode([e.source for _, e in shard], [e.target for _, e in shard])
    tokens = dist.sum(torch.as_tensor(target_units(batch), dtype=torch.float32, device=batch.labels.device))
    shard_ids = [task_index[name] for name, _ in shard]
    sources = [e.source for _, e in shard]
    copies = copies_of(prompts)  # an ensemble's M members each see the whole batch
    if copies > 1:
        batch = batch.repeated(copies)
    plan = runner.pass_plan(1, batch, prompts.length)  # copies·B sequences, each under its own prompt
    use_prior = prior_mean is not None
    prior = prompts.prior_term(task_ids, prior_mean, config.sigma) if use_prior else torch.zeros(())
    if not plan.chunked:
        ce_sum = runner.batch_loss_sum(prompts(shard_ids, sources), batch)
        (ce_sum / tokens + prior / dist.world_size).backward()
    else:  # passes of the plan's examples, gradients accumulated in .grad (the same sum to round-off)
        ce_sum = torch.zeros((), device=batch.input_ids.device)
        for _, rows in plan.chunks():
            chunk = prompts(shard_ids, sources)[rows] if copies > 1 else prompts(shard_ids[rows], sources[rows])
            part = runner.batch_loss_sum(chunk, batch.rows(rows))
            (part / tokens).backward()
            ce_sum = ce_sum + part.detach()
        if use_prior:
            (prior / dist.world_size).backward()
    sum_gradients(dist, list(prompts.parameters()))
    return dist.sum(ce_sum.detach()) / tokens / copies, prior.detach() / copies


def adapt(
    runner: FrozenT5Runner,
    tasks: list[Task],
    train_by_task: dict[str, list[TextExample]],
    dev_by_task: dict[str, list[TextExample]],
    init: torch.Tensor | PromptModule,
    config: AdaptConfig,
    *,
    prior_mean: torch.Tensor | None = None,
    label_style: str = "words",
    batches: Callable[[torch.Generator], list[tuple[str, TextExample]]] | None = None,
    files: RunFiles | None = None,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[AdaptStepRecord], None] | None = None,
    dist: Distributed = SINGLE,
) -> AdaptResult:
    """Adapt θ_k = W ⊙ a_k b_kᵀ (W from `init` `(l, d)`; or a method's own prompt module `init`) to
    the target tasks (SPEC §3).

    Loss = token-mean cross-entropy of a mixed batch + the prior term toward `prior_mean` (θ̄^S,
    Eq. 6), and no prior term when `prior_mean` is None (vanilla prompt tuning, the paper's ablation:
    the method decides, `methods.base.TransferMethod.prior_centre`). `batches(generator)`
    replaces the example-proportional mixed batches (the few-shot probe's epochs); it must be
    deterministic given the generator for `--resume` to stay exact. Returns the best dev state when
    `eval_every` is set, else the last. `files`: checkpoint, step log, resume (none: neither kept).
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    names = [task.name for task in tasks]
    prompts = (TargetPrompts(init, names) if isinstance(init, torch.Tensor) else init).to(runner.device)
    if prior_mean is not None:
        prior_mean = prior_mean.detach().float().to(runner.device)
    optimizer = torch.optim.AdamW(prompts.parameter_groups(config.lr_shared, config.lr_scales), weight_decay=config.weight_decay)
    scheduler = linear_schedule(optimizer, warmup_steps=config.warmup_steps, total_steps=config.steps)
    guard = SizeGuard(prompts.trained(), runner.vocab_embeddings)  # from the init, also on resume
    lower = f"--lr-shared and --lr-scales (now {config.lr_shared:g} and {config.lr_scales:g})"
    task_index = {name: k for k, name in enumerate(names)}
    loop = TrainingLoop(
        files, total_steps=config.steps, checkpoint_every=config.checkpoint_every, optimizer=optimizer,
        scheduler=scheduler, generator=generator, dist=dist,
    )

    best_score, best = float("-inf"), AdaptResult(copy.deepcopy(prompts).cpu())
    saved = loop.resume()
    if saved is not None:
        check_best(loop.files.checkpoint, saved, prompts.state_dict(), step=loop.step)
        prompts.load_state_dict(saved["prompts"])
        best_score = saved["best_score"]
        best = AdaptResult(copy.deepcopy(prompts).cpu(), saved["best_dev"], saved["best_step"])
        best.prompts.load_state_dict(saved["best_prompts"])

    def method_state() -> dict:
        return {
            "prompts": prompts.state_dict(),
            "best_score": best_score,
            "best_prompts": best.prompts.state_dict(),
            "best_dev": best.dev_metrics,
            "best_step": best.best_step,
        }

    if on_start:
        on_start(loop.step)
    with loop:
        while loop.step < config.steps:
            if batches is None:
                pairs = mixed_batch(train_by_task, batch_size=config.batch_size, generator=generator, cap=config.mixing_cap)
            else:
                pairs = batches(generator)
            loss, prior = _loss_and_gradients(runner, prompts, pairs, task_index, prior_mean, config, dist)
            total = loss + prior
            if not torch.isfinite(total):
                raise BmtptError(f"non-finite loss at adaptation step {loop.step + 1}: {loop.last_good(lower)}")
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            guard.check(prompts.trained(), step=loop.step + 1, where=lambda: loop.last_good(lower))  # before any save
            scheduler.step()
            loop.step += 1
            step = loop.step
            record = AdaptStepRecord(step=step, loss=float(total), prior=float(prior), lr=lr)
            if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
                record.dev = evaluate_dev(
                    runner, prompts, tasks, dev_by_task, config.eval_batch_size, label_style, config.rank_score,
                    config.invalid_predictions,
                )
                score = sum(record.dev.values()) / len(record.dev)
                if score > best_score:
                    best_score = score
                    best = AdaptResult(copy.deepcopy(prompts).cpu(), dict(record.dev), step)
            if on_step:
                on_step(record)
            loop.end_step(asdict(record), method_state)
    if not config.eval_every:
        return AdaptResult(copy.deepcopy(prompts).cpu(), {}, loop.step)
    return best
