"""Source posterior learning (SPEC §2): M particles moved by Damped SVGD on the source tasks' loss.

Reads top to bottom: `start_source` (particles from vocabulary embeddings, AdamW, schedule) →
`train_source` (resume or start, then per step a batch and one `source_update`: `svgd_step` and the
optimizer) → the particles `(M, l, d)` the command writes as an artifact. Resume, checkpoints, the
step log and Ctrl-C are `runtime.loop.TrainingLoop`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

from bmtpt_cli.data.sampling import source_batch
from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from bmtpt_cli.runner.plan import PassPlan
from bmtpt_cli.runner.runner import EncodedBatch, FrozenT5Runner, target_units
from bmtpt_cli.runtime.distributed import SINGLE, Distributed
from bmtpt_cli.runtime.divergence import SizeGuard
from bmtpt_cli.runtime.config_rules import (
    DECAY, NON_NEGATIVE, POSITIVE, POSITIVE_OR_NONE, RATE, RATE_OR_NONE, check_config_values, one_of,
)
from bmtpt_cli.runtime.loop import RunFiles, TrainingLoop, config_fingerprint
from bmtpt_cli.runtime.profiling import phase
from bmtpt_cli.runtime.resume_checks import check_tensor
from bmtpt_cli.runtime.schedule import linear_schedule
from bmtpt_cli.source.kernel import damping_lambda, particle_kernel, svgd_direction


@dataclass(frozen=True)
class SourceConfig:
    """What a source run computes; every field changes the result except `checkpoint_every`.

    Built from `bmtpt source`'s settings by name (the defaults and help texts live there).
    """

    particles: int  # M
    prompt_length: int  # l
    steps: int
    examples_per_task: int
    sample_tasks: int | None  # None: every task in every step
    lr: float
    warmup_steps: int
    weight_decay: float
    damping: float | None  # None: damping_lambda(M, l·d, damping_c)
    damping_c: float
    likelihood_scale: float  # c in s_j = −c ∇L_j
    loss_weighting: str  # tokens: L_j is the batch's token mean; examples: the mean of per-example means
    bandwidth: float | None  # None: median heuristic
    vocab_top_k: int
    seed: int
    checkpoint_every: int

    def __post_init__(self):
        check_config_values(self, {
            "particles": POSITIVE, "prompt_length": POSITIVE, "steps": POSITIVE, "examples_per_task": POSITIVE,
            "sample_tasks": POSITIVE_OR_NONE, "lr": RATE, "warmup_steps": NON_NEGATIVE, "weight_decay": DECAY,
            "damping": (lambda v: v is None or (isinstance(v, (int, float)) and 0 < v <= 1), "in (0, 1] or None"),
            "damping_c": RATE, "likelihood_scale": RATE, "loss_weighting": one_of("tokens", "examples"),
            "bandwidth": RATE_OR_NONE, "vocab_top_k": POSITIVE, "seed": NON_NEGATIVE, "checkpoint_every": POSITIVE,
        })

    def fingerprint(self) -> dict:
        """The settings a checkpoint must agree on to be resumed."""
        return config_fingerprint(self)


@dataclass
class StepRecord:
    """What one SVGD step reports (logged as one JSON line)."""

    step: int
    loss: float  # mean over particles
    particle_losses: list[float]
    bandwidth: float  # the kernel's h at this step
    mean_distance: float  # the same particles' mean pairwise distance (before this step's update)
    lr: float
    passes: int = 1  # passes of the frozen T5 the step's M·B sequences took (the chunk plan)
    plan: str | None = None  # the chunk plan, logged on the first step and whenever it changes


@dataclass
class SourceState:
    """What a source run trains: Θ as one parameter, its optimizer and schedule, and λ."""

    particles: torch.nn.Parameter  # (M, l, d)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    damping: float
    plan: str | None = None  # the last step's chunk plan (logged again only when it changes)
    guard: SizeGuard | None = None  # the divergence check after each update (None: finiteness only)


def init_particles(runner: FrozenT5Runner, config: SourceConfig, generator: torch.Generator) -> torch.Tensor:
    """M prompts of l vocabulary embeddings each, a different draw per particle: `(M, l, d)` float32."""
    return sample_vocab_prompts(
        runner.vocab_embeddings,
        count=config.particles,
        length=config.prompt_length,
        candidate_ids=runner.vocab_candidate_ids(config.vocab_top_k),
        generator=generator,
    )


def resolved_damping(config: SourceConfig, d_model: int) -> float:
    """λ of Damped SVGD: the configured value, or min(1, e⁻¹ (c + M/(l·d))) (SPEC §2).

    A lone particle (M = 1) has no pair to repel, and damping would only rescale its gradient: λ
    defaults to 1 there, so `--particles 1` is exactly the vanilla multi-task transfer baseline.
    """
    if config.damping is not None:
        return config.damping
    if config.particles == 1:
        return 1.0
    return damping_lambda(config.particles, config.prompt_length * d_model, c=config.damping_c)


def adamw(params: list[torch.nn.Parameter], **options) -> torch.optim.AdamW:
    """torch's AdamW, in its fused single-kernel form where the installed torch has one for the
    parameters' device (CPU and CUDA since torch 2.4): the same update in one kernel instead of a
    dozen, which is most of the optimizer's cost at small prompt shapes (benchmark 1)."""
    try:
        return torch.optim.AdamW(params, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch
        return torch.optim.AdamW(params, **options)


def start_source(runner: FrozenT5Runner, config: SourceConfig) -> tuple[SourceState, torch.Generator]:
    """Seed everything, draw the initial particles, build AdamW and the schedule; returns the state
    and the data generator (which also drew the particles)."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    particles = torch.nn.Parameter(init_particles(runner, config, generator).to(runner.device))
    optimizer = adamw([particles], lr=config.lr, weight_decay=config.weight_decay)
    scheduler = linear_schedule(optimizer, warmup_steps=config.warmup_steps, total_steps=config.steps)
    guard = SizeGuard({"particles": [particles]}, runner.vocab_embeddings)  # from the initial draw, also on resume
    return SourceState(particles, optimizer, scheduler, resolved_damping(config, runner.d_model), guard=guard), generator


class SVGDStep(NamedTuple):
    """What `svgd_step` measured on the particles it moved (all before the optimizer's update)."""

    losses: torch.Tensor  # (M,) each particle's mean loss over the batch
    bandwidth: float  # the kernel's h
    mean_distance: float  # mean pairwise particle distance, from the kernel's own squared distances


def svgd_step(
    runner: FrozenT5Runner,
    particles: torch.nn.Parameter,
    examples: list[TextExample],
    *,
    damping: float,
    likelihood_scale: float,
    bandwidth: float | None,
    loss_weighting: str = "tokens",
    dist: Distributed = SINGLE,
) -> SVGDStep:
    """Set `particles.grad` to −φ_damped for one batch; returns the per-particle losses `(M,)`, h and
    the particles' mean pairwise distance (the kernel's particles, before the update).

    One forward/backward over all M·B sequences (this process's share of them when data-parallel), or
    the passes of the runner's chunk plan (`runner.pass_plan`, recorded in `runner.last_plan`);
    scores s_j = −c ∇L_j; φ from `svgd_direction`, identical on every process. The phases run in
    `torch.profiler.record_function` ranges (`runtime.profiling.phase`, entered only while a profiler
    records) named `bmtpt.encode`, `.forward`, `.backward`,
    `.reduce` and `.svgd`, so a profile of the shipped step shows where its time goes.
    """
    shard = dist.shard(examples)
    with phase("bmtpt.encode"):
        batch = runner.encode([e.source for e in shard], [e.target for e in shard])
    per_example = loss_weighting == "examples"
    plan = runner.pass_plan(particles.shape[0], batch, particles.shape[1])
    if plan.chunked:
        sums, grads = _chunked_sums_and_grads(runner, particles, batch, plan, per_example=per_example)
    else:
        with phase("bmtpt.forward"):
            sums = runner.particle_loss_sums(particles, batch, per_example=per_example)  # (M,) loss sums over this share
        with phase("bmtpt.backward"):
            # L_j depends on θ_j only, so the gradient of the sum is every particle's own gradient.
            (grads,) = torch.autograd.grad(sums.sum(), particles)  # (M, l, d)
    with phase("bmtpt.reduce"):
        units = len(shard) if per_example else target_units(batch)  # this share's target tokens (or examples)
        sums = sums.detach()
        if dist.enabled:  # one all-reduce for the loss sums and the units, one for the gradients
            totals = dist.sum(torch.cat([sums, torch.as_tensor(units, dtype=sums.dtype, device=sums.device).view(1)]))
            sums, units, grads = totals[:-1], totals[-1], dist.sum(grads)  # (M,), () of the whole batch
        losses = sums / units  # (M,) mean loss of each particle over the whole batch
        grads = grads / units  # (M, l, d) ∇L_j
    with phase("bmtpt.svgd"):
        scores = -likelihood_scale * grads
        flat = particles.detach().flatten(1)  # (M, D)
        kernel = particle_kernel(flat, bandwidth=bandwidth)  # K, h and the spread from one distance matrix
        phi = svgd_direction(flat, scores.flatten(1), damping=damping, bandwidth=kernel.bandwidth,
                             kernel=kernel.matrix)  # (M, D)
        particles.grad = -phi.view_as(particles)  # the optimizer ascends along φ
    return SVGDStep(losses, kernel.bandwidth, kernel.mean_distance)


def _chunked_sums_and_grads(
    runner: FrozenT5Runner, particles: torch.Tensor, batch: EncodedBatch, plan: PassPlan, *, per_example: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss sums `(M,)` and their gradients `(M, l, d)` of `particle_loss_sums`, pass by pass of
    `plan` (SPEC §2 batch): each pass's graph is freed before the next, so the peak is one pass's.

    The losses are separable — a sequence's loss depends on its own particle only — so accumulating
    the passes' sums and gradients gives the one-pass result up to float32 summation order.
    """
    theta = particles.detach()  # (M, l, d)
    sums = torch.zeros(theta.shape[0], device=theta.device)  # (M,)
    grads = torch.zeros_like(theta)  # (M, l, d)
    for rows, examples in plan.chunks():
        leaf = theta[rows].requires_grad_(True)  # (m, l, d) this pass's particles
        with phase("bmtpt.forward"):
            part = runner.particle_loss_sums(leaf, batch.rows(examples), per_example=per_example)  # (m,)
        with phase("bmtpt.backward"):
            (grad,) = torch.autograd.grad(part.sum(), leaf)  # (m, l, d)
        sums[rows] += part.detach().to(sums.dtype)
        grads[rows] += grad
    return sums, grads


def source_update(
    runner: FrozenT5Runner,
    state: SourceState,
    examples: list[TextExample],
    config: SourceConfig,
    *,
    step: int,
    dist: Distributed = SINGLE,
    stopped: Callable[[str], str] = lambda lower: "no artifact written",
) -> StepRecord:
    """Step `step` of a source run on one batch: `svgd_step`, the optimizer and schedule, the
    finiteness and divergence checks (`runtime.divergence`: before anything is logged or saved);
    returns the step's record. `stopped(lower)` says where a failed run can be resumed from and
    `lower` the learning rate to lower."""
    lr = state.scheduler.get_last_lr()[0]
    lower = f"--lr (now {config.lr:g})"
    losses, h, spread = svgd_step(
        runner, state.particles, examples, damping=state.damping, likelihood_scale=config.likelihood_scale,
        bandwidth=config.bandwidth, loss_weighting=config.loss_weighting, dist=dist,
    )
    values = losses.tolist()  # the record's, and the finiteness check's, in one copy
    if not all(map(math.isfinite, values)):
        raise BmtptError(f"non-finite loss at step {step}: {stopped(lower)}")
    with phase("bmtpt.optimizer"):
        state.optimizer.step()
        state.particles.grad = None  # zero_grad(set_to_none=True) of the optimizer's one parameter
        state.scheduler.step()
    if state.guard is not None:
        state.guard.check({"particles": [state.particles]}, step=step, where=lambda: stopped(lower))
    elif not bool(state.particles.isfinite().all()):
        raise BmtptError(f"particles became non-finite at step {step}: {stopped(lower)}")
    plan = runner.last_plan
    described = str(plan) if plan is not None else None
    record = StepRecord(
        step=step,
        loss=math.fsum(values) / len(values),
        particle_losses=[round(v, 6) for v in values],
        bandwidth=h,
        mean_distance=spread,
        lr=lr,
        passes=plan.passes if plan is not None else 1,
        plan=described if described != state.plan else None,
    )
    state.plan = described
    return record


def train_source(
    runner: FrozenT5Runner,
    examples_by_task: dict[str, list[TextExample]],
    config: SourceConfig,
    *,
    files: RunFiles | None = None,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    dist: Distributed = SINGLE,
) -> torch.Tensor:
    """Run Damped SVGD over the source tasks for `config.steps` steps; returns Θ `(M, l, d)` float32.

    `files` names the checkpoint and step log and whether to resume (none: neither is kept).
    Ctrl-C saves a checkpoint of the last finished step before stopping.
    """
    state, generator = start_source(runner, config)
    loop = TrainingLoop(
        files, total_steps=config.steps, checkpoint_every=config.checkpoint_every, optimizer=state.optimizer,
        scheduler=state.scheduler, generator=generator, dist=dist,
    )
    saved = loop.resume()
    if saved is not None:
        with torch.no_grad():
            state.particles.copy_(check_tensor(loop.files.checkpoint, saved, "particles", state.particles.detach()))
    if on_start:
        on_start(loop.step)
    with loop:
        while loop.step < config.steps:
            pairs = source_batch(
                examples_by_task, per_task=config.examples_per_task, sample_tasks=config.sample_tasks,
                generator=generator,
            )
            record = source_update(
                runner, state, [example for _, example in pairs], config, step=loop.step + 1, dist=dist,
                stopped=loop.last_good,
            )
            loop.step += 1
            if on_step:
                on_step(record)
            loop.end_step(asdict(record), lambda: {"particles": state.particles.detach().cpu()})
    return state.particles.detach().float().cpu()
