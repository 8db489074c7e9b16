"""The adaptation loop: train W, a_k, b_k on the target tasks' cross-entropy plus the prior term.

Reads top to bottom: build `TargetPrompts` from the init → (resume) → steps of mixed target batches,
dev evaluation every `eval_every` steps keeping the best state → `AdaptResult`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bmtpt_cli.adapter.prompt import TargetPrompts
from bmtpt_cli.checkpoint import (
    Interrupted,
    StepLog,
    StopRequests,
    capture_rng,
    check_fingerprint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from bmtpt_cli.data.sampling import mixed_batch
from bmtpt_cli.data.task import Task, TextExample
from bmtpt_cli.distributed import SINGLE, Distributed, sum_gradients
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.evaluation.scoring import score_task
from bmtpt_cli.runner.runner import FrozenT5Runner, target_tokens
from bmtpt_cli.schedule import linear_schedule


@dataclass(frozen=True)
class AdaptConfig:
    """What an adaptation run computes; all fields but `checkpoint_every` change the result."""

    steps: int = 30_000
    batch_size: int = 32
    lr_shared: float = 0.3  # W
    lr_scales: float = 0.4  # a_k, b_k
    sigma: float = 1e5
    prior: bool = True
    warmup_steps: int = 500
    weight_decay: float = 1e-5
    eval_every: int | None = 1000  # None: no dev evaluation, keep the last state
    eval_batch_size: int = 32
    mixing_cap: int | None = None
    seed: int = 0
    checkpoint_every: int = 1000

    def fingerprint(self) -> dict:
        values = asdict(self)
        values.pop("checkpoint_every")
        return values


@dataclass
class AdaptResult:
    """The kept (best-on-dev, or last) target prompts and their dev metrics."""

    prompts: TargetPrompts
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
    prompts: TargetPrompts,
    tasks: list[Task],
    dev_by_task: dict[str, list[TextExample]],
    batch_size: int,
    label_style: str = "words",
) -> dict[str, float]:
    """Each task's main dev metric with its own composed prompt (rank scoring where possible)."""
    with torch.no_grad():
        return {
            task.name: score_task(
                runner, prompts.compose(k).detach(), task, dev_by_task[task.name], batch_size=batch_size,
                label_style=label_style,
            ).value
            for k, task in enumerate(tasks)
        }


def _loss_and_gradients(
    runner: FrozenT5Runner,
    prompts: TargetPrompts,
    pairs: list[tuple[str, TextExample]],
    task_index: dict[str, int],
    prior_mean: torch.Tensor,
    config: AdaptConfig,
    dist: Distributed,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backpropagate one batch's loss into the prompts; returns (cross-entropy, prior term), detached.

    Data-parallel: each process scores its share of the batch; token-loss sums and gradients are
    added up over the processes, so every one holds the full batch's gradient. The prior term is
    computed on every process for the whole batch and enters each process's gradient divided by
    the number of processes.
    """
    task_ids = [task_index[name] for name, _ in pairs]
    shard = dist.shard(pairs)
    batch = runner.encode([e.source for _, e in shard], [e.target for _, e in shard])
    tokens = dist.sum(target_tokens(batch).float())
    ce_sum = runner.batch_loss_sum(prompts([task_index[name] for name, _ in shard]), batch)
    prior = prompts.prior_term(task_ids, prior_mean, config.sigma) if config.prior else torch.zeros(())
    (ce_sum / tokens + prior / dist.world_size).backward()
    sum_gradients(dist, list(prompts.parameters()))
    return dist.sum(ce_sum.detach()) / tokens, prior.detach()


def adapt(
    runner: FrozenT5Runner,
    tasks: list[Task],
    train_by_task: dict[str, list[TextExample]],
    dev_by_task: dict[str, list[TextExample]],
    init: torch.Tensor,
    config: AdaptConfig,
    *,
    prior_mean: torch.Tensor | None = None,
    label_style: str = "words",
    checkpoint_path: Path | None = None,
    log_path: Path | None = None,
    resume: bool = False,
    fingerprint: dict | None = None,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[AdaptStepRecord], None] | None = None,
    dist: Distributed = SINGLE,
) -> AdaptResult:
    """Adapt θ_k = W ⊙ a_k b_kᵀ (W from `init` `(l, d)`) to the target tasks (SPEC §3).

    Loss = token-mean cross-entropy of a mixed batch + the prior term toward `prior_mean` (θ̄^S;
    defaults to `init`); `config.prior=False` drops it. Returns the best dev state when
    `eval_every` is set, else the last.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    names = [task.name for task in tasks]
    prompts = TargetPrompts(init, names).to(runner.device)
    prior_mean = (init if prior_mean is None else prior_mean).detach().float().to(runner.device)
    optimizer = torch.optim.AdamW(
        [
            {"params": [prompts.shared], "lr": config.lr_shared},
            {"params": prompts.scale_parameters(), "lr": config.lr_scales},
        ],
        weight_decay=config.weight_decay,
    )
    scheduler = linear_schedule(optimizer, warmup_steps=config.warmup_steps, total_steps=config.steps)
    task_index = {name: k for k, name in enumerate(names)}

    step, best_score, best = 0, float("-inf"), AdaptResult(copy.deepcopy(prompts).cpu())
    if resume:
        state = load_checkpoint(checkpoint_path)
        check_fingerprint(checkpoint_path, state["fingerprint"], fingerprint or {})
        prompts.load_state_dict(state["prompts"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], generator)
        step, best_score = state["step"], state["best_score"]
        best = AdaptResult(copy.deepcopy(prompts).cpu(), state["best_dev"], state["best_step"])
        best.prompts.load_state_dict(state["best_prompts"])

    def checkpoint() -> None:
        if checkpoint_path is None or not dist.is_main:  # every process holds the same state; one writes it
            return
        save_checkpoint(
            checkpoint_path,
            {
                "prompts": prompts.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": capture_rng(generator),
                "step": step,
                "best_score": best_score,
                "best_prompts": best.prompts.state_dict(),
                "best_dev": best.dev_metrics,
                "best_step": best.best_step,
                "fingerprint": fingerprint or {},
            },
        )

    if on_start:
        on_start(step)
    with StepLog(log_path if log_path and dist.is_main else None, resume_step=step if resume else None) as log:
        with StopRequests() as stop:
            while step < config.steps:
                pairs = mixed_batch(
                    train_by_task, batch_size=config.batch_size, generator=generator, cap=config.mixing_cap
                )
                loss, prior = _loss_and_gradients(runner, prompts, pairs, task_index, prior_mean, config, dist)
                total = loss + prior
                if not torch.isfinite(total):
                    where = f"the last good checkpoint is '{checkpoint_path}'" if checkpoint_path and Path(checkpoint_path).is_file() else "no checkpoint yet"
                    raise BmtptError(
                        f"non-finite loss at adaptation step {step + 1}: lower the learning rates; no artifact written, {where}"
                    )
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                record = AdaptStepRecord(step=step, loss=float(total), prior=float(prior), lr=lr)
                if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
                    record.dev = evaluate_dev(runner, prompts, tasks, dev_by_task, config.eval_batch_size, label_style)
                    score = sum(record.dev.values()) / len(record.dev)
                    if score > best_score:
                        best_score = score
                        best = AdaptResult(copy.deepcopy(prompts).cpu(), dict(record.dev), step)
                log.write(asdict(record))
                if on_step:
                    on_step(record)
                if step % config.checkpoint_every == 0 or step == config.steps or stop.requested:
                    checkpoint()
                if stop.requested and step < config.steps:
                    where = f"checkpoint saved to '{checkpoint_path}'" if checkpoint_path else "no checkpoint kept"
                    raise Interrupted(f"stopped by {stop.requested} after step {step}: {where} — rerun with --resume")
    if not config.eval_every:
        return AdaptResult(copy.deepcopy(prompts).cpu(), {}, step)
    return best
