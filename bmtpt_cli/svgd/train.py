"""Source posterior learning (SPEC §2): M particles moved by Damped SVGD on the source tasks' loss.

Reads top to bottom: `init_particles` → `train_source` (resume or start, then one `svgd_step` per
step, logging and checkpointing) → the particles `(M, l, d)` the command writes as an artifact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

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
from bmtpt_cli.data.sampling import source_batch
from bmtpt_cli.data.task import TextExample
from bmtpt_cli.distributed import SINGLE, Distributed
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from bmtpt_cli.runner.runner import FrozenT5Runner, target_tokens
from bmtpt_cli.schedule import linear_schedule
from bmtpt_cli.svgd.kernel import damping_lambda, mean_pairwise_distance, rbf_kernel, svgd_direction


@dataclass(frozen=True)
class SourceConfig:
    """What a source run computes; every field changes the result except `checkpoint_every`."""

    num_particles: int = 5
    prompt_length: int = 100
    steps: int = 100_000
    examples_per_task: int = 1
    sample_tasks: int | None = None
    lr: float = 0.3
    warmup_steps: int = 500
    weight_decay: float = 1e-5
    damping: float | None = None  # None: damping_lambda(M, l·d, damping_c)
    damping_c: float = 1.0
    likelihood_scale: float = 1.0  # c in s_j = −c ∇L_j
    bandwidth: float | None = None  # None: median heuristic
    vocab_top_k: int = 5000
    seed: int = 0
    checkpoint_every: int = 1000

    def fingerprint(self) -> dict:
        """The settings a checkpoint must agree on to be resumed."""
        values = asdict(self)
        values.pop("checkpoint_every")
        return values


@dataclass
class StepRecord:
    """What one SVGD step reports (logged as one JSON line)."""

    step: int
    loss: float  # mean over particles
    particle_losses: list[float]
    bandwidth: float
    mean_distance: float
    lr: float


def init_particles(runner: FrozenT5Runner, config: SourceConfig, generator: torch.Generator) -> torch.Tensor:
    """M prompts of l vocabulary embeddings each, a different draw per particle: `(M, l, d)` float32."""
    return sample_vocab_prompts(
        runner.vocab_embeddings,
        count=config.num_particles,
        length=config.prompt_length,
        vocab_limit=runner.vocab_size,
        generator=generator,
        top_k=config.vocab_top_k,
    )


def resolved_damping(config: SourceConfig, d_model: int) -> float:
    """λ of Damped SVGD: the configured value, or min(1, e⁻¹ (c + M/(l·d))) (SPEC §2)."""
    if config.damping is not None:
        return config.damping
    return damping_lambda(config.num_particles, config.prompt_length * d_model, c=config.damping_c)


def svgd_step(
    runner: FrozenT5Runner,
    particles: torch.nn.Parameter,
    examples: list[TextExample],
    *,
    damping: float,
    likelihood_scale: float,
    bandwidth: float | None,
    dist: Distributed = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set `particles.grad` to −φ_damped for one batch; returns the per-particle losses `(M,)` and h.

    One forward/backward over all M·B sequences (this process's share of them when data-parallel);
    scores s_j = −c ∇L_j; φ from `svgd_direction`, identical on every process.
    """
    shard = dist.shard(examples)
    batch = runner.encode([e.source for e in shard], [e.target for e in shard])
    sums = runner.particle_loss_sums(particles, batch)  # (M,) token-loss sums over this share
    # L_j depends on θ_j only, so the gradient of the sum is every particle's own gradient.
    (grads,) = torch.autograd.grad(sums.sum(), particles)  # (M, l, d)
    totals = dist.sum(torch.cat([sums.detach(), target_tokens(batch).to(sums.dtype).view(1)]))  # (M + 1,)
    tokens = totals[-1]
    losses = totals[:-1] / tokens  # (M,) mean loss of each particle over the whole batch
    grads = dist.sum(grads) / tokens  # (M, l, d) ∇L_j
    scores = -likelihood_scale * grads
    flat = particles.detach().flatten(1)  # (M, D)
    _, h = rbf_kernel(flat, bandwidth=bandwidth)
    phi = svgd_direction(flat, scores.flatten(1), damping=damping, bandwidth=h)  # (M, D)
    particles.grad = -phi.view_as(particles)  # the optimizer ascends along φ
    return losses.detach(), h


def train_source(
    runner: FrozenT5Runner,
    examples_by_task: dict[str, list[TextExample]],
    config: SourceConfig,
    *,
    checkpoint_path: Path,
    log_path: Path,
    resume: bool,
    fingerprint: dict,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    dist: Distributed = SINGLE,
) -> torch.Tensor:
    """Run Damped SVGD over the source tasks for `config.steps` steps; returns Θ `(M, l, d)` float32.

    `fingerprint` (the resolved settings that change the result) is saved in each checkpoint and
    compared on `--resume`. Ctrl-C saves a checkpoint of the last finished step before stopping.
    """
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    particles = torch.nn.Parameter(init_particles(runner, config, generator).to(runner.device))
    optimizer = torch.optim.AdamW([particles], lr=config.lr, weight_decay=config.weight_decay)
    scheduler = linear_schedule(optimizer, warmup_steps=config.warmup_steps, total_steps=config.steps)
    damping = resolved_damping(config, runner.d_model)

    step = 0
    if resume:
        state = load_checkpoint(checkpoint_path)
        check_fingerprint(checkpoint_path, state["fingerprint"], fingerprint)
        with torch.no_grad():
            particles.copy_(state["particles"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], generator)
        step = state["step"]

    def checkpoint() -> None:
        if not dist.is_main:  # every process holds the same state; one writes it
            return
        save_checkpoint(
            checkpoint_path,
            {
                "particles": particles.detach().cpu(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": capture_rng(generator),
                "step": step,
                "fingerprint": fingerprint,
            },
        )

    if on_start:
        on_start(step)
    with StepLog(log_path if dist.is_main else None, resume_step=step if resume else None) as log, StopRequests() as stop:
        while step < config.steps:
            pairs = source_batch(
                examples_by_task,
                per_task=config.examples_per_task,
                sample_tasks=config.sample_tasks,
                generator=generator,
            )
            lr = scheduler.get_last_lr()[0]
            losses, h = svgd_step(
                runner,
                particles,
                [example for _, example in pairs],
                damping=damping,
                likelihood_scale=config.likelihood_scale,
                bandwidth=config.bandwidth,
                dist=dist,
            )
            if not torch.isfinite(losses).all():
                raise BmtptError(f"non-finite loss at step {step + 1}: lower --lr; {_last_good(checkpoint_path)}")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if not torch.isfinite(particles).all():
                raise BmtptError(
                    f"particles became non-finite at step {step + 1}: lower --lr; {_last_good(checkpoint_path)}"
                )
            step += 1
            record = StepRecord(
                step=step,
                loss=losses.mean().item(),
                particle_losses=[round(v, 6) for v in losses.tolist()],
                bandwidth=float(h),
                mean_distance=mean_pairwise_distance(particles.detach()),
                lr=lr,
            )
            log.write(asdict(record))
            if on_step:
                on_step(record)
            if step % config.checkpoint_every == 0 or step == config.steps or stop.requested:
                checkpoint()
            if stop.requested and step < config.steps:
                raise Interrupted(
                    f"stopped by {stop.requested} after step {step}: checkpoint saved to '{checkpoint_path}' — "
                    f"rerun the same command with --resume"
                )
    return particles.detach().float().cpu()


def _last_good(checkpoint_path: Path) -> str:
    """Where a stopped run can be resumed from, for error messages (no artifact is written)."""
    if Path(checkpoint_path).is_file():
        step = load_checkpoint(checkpoint_path)["step"]
        return f"no artifact written; the last good checkpoint is '{checkpoint_path}' (step {step}), resume with --resume"
    return "no artifact written and no checkpoint yet"
