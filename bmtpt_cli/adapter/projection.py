"""Training a cross-model projector (SPEC §5f): the two objectives of Su et al. (NAACL 2022, §6).

- `train_on_tasks` ("task tuning"): the projected prompts go into the frozen *target* model and the
  projector's weights follow the token cross-entropy of the training tasks' labels; each example is
  scored under every projected prompt that serves its task (all particles, or the task's own prompt).
- `train_on_distance` ("distance minimizing"): the mean squared distance between the projected
  source-model prompts and the target model's own prompts of the same tasks.

Both: AdamW at a constant learning rate (the reference's 0.005), seeded; resume, checkpoints, the
step log and Ctrl-C are `runtime.loop.TrainingLoop`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from bmtpt_cli.adapter.projector import PromptProjector
from bmtpt_cli.data.sampling import mixed_batch
from bmtpt_cli.data.task import TextExample
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runner.runner import FrozenT5Runner, target_units
from bmtpt_cli.runtime.config_rules import NON_NEGATIVE, POSITIVE, RATE, check_config_values
from bmtpt_cli.runtime.distributed import SINGLE, Distributed, sum_gradients
from bmtpt_cli.runtime.loop import RunFiles, TrainingLoop, config_fingerprint
from bmtpt_cli.runtime.resume_checks import check_tensors

PROJECTOR_WEIGHT_DECAY = 0.01
"""AdamW's weight decay on the projector (PyTorch's default, which the reference keeps)."""


@dataclass(frozen=True)
class ProjectorConfig:
    """How a projector is trained; all fields but `checkpoint_every` change the result."""

    steps: int
    batch_size: int  # examples per step (task objective)
    lr: float
    seed: int
    checkpoint_every: int

    def __post_init__(self):
        check_config_values(self, {
            "steps": POSITIVE, "batch_size": POSITIVE, "lr": RATE, "seed": NON_NEGATIVE, "checkpoint_every": POSITIVE,
        })

    def fingerprint(self) -> dict:
        """The settings a checkpoint must agree on to be resumed."""
        return config_fingerprint(self)


@dataclass
class ProjectorStepRecord:
    step: int
    loss: float  # token-mean cross-entropy (task) or mean squared distance (distance)
    lr: float


def _optimised(projector: PromptProjector, config: ProjectorConfig, files: RunFiles | None, dist: Distributed):
    """The optimizer, constant schedule, data generator and training loop of a projector run."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=config.lr, weight_decay=PROJECTOR_WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)  # constant, as the reference
    loop = TrainingLoop(files, total_steps=config.steps, checkpoint_every=config.checkpoint_every, optimizer=optimizer,
                        scheduler=scheduler, generator=generator, dist=dist)
    saved = loop.resume()
    if saved is not None:
        projector.load_state_dict(check_tensors(loop.files.checkpoint, saved, "projector", projector.state_dict()))
    return optimizer, generator, loop


def _run(
    projector: PromptProjector,
    config: ProjectorConfig,
    step_loss: Callable[[torch.Generator], torch.Tensor],
    *,
    files: RunFiles | None,
    on_start: Callable[[int], None] | None,
    on_step: Callable[[ProjectorStepRecord], None] | None,
    dist: Distributed,
    what: str,
) -> PromptProjector:
    """The loop both objectives share: `step_loss(generator)` backpropagates one step's loss into the
    projector and returns it (detached); then the update, the record, the checkpoint."""
    projector.train()
    optimizer, generator, loop = _optimised(projector, config, files, dist)

    def method_state() -> dict:
        return {"projector": projector.state_dict()}

    if on_start:
        on_start(loop.step)
    with loop:
        while loop.step < config.steps:
            loss = step_loss(generator)
            if not torch.isfinite(loss):
                raise BmtptError(f"non-finite {what} at projector step {loop.step + 1}: {loop.last_good(f'--lr (now {config.lr:g})')}")
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loop.scheduler.step()
            loop.step += 1
            record = ProjectorStepRecord(step=loop.step, loss=float(loss), lr=lr)
            if on_step:
                on_step(record)
            loop.end_step(asdict(record), method_state)
    return projector.eval()


def task_loss_and_gradients(
    runner: FrozenT5Runner,
    projector: PromptProjector,
    sources: torch.Tensor,
    serves: dict[str, list[int]],
    pairs: list[tuple[str, TextExample]],
    dist: Distributed = SINGLE,
) -> torch.Tensor:
    """Backpropagate one batch's token-mean cross-entropy on the target model into the projector;
    returns it, detached.

    `sources` `(P, l, d_src)`: the source-model prompts; `serves[task]`: the indices of the prompts an
    example of `task` is scored under (every particle, or the task's own prompt). Each (example,
    prompt) pair is one sequence, so with M particles the loss is the mean of the M particles' losses.
    """
    rows = [(index, example) for task, example in pairs for index in serves[task]]  # one sequence per (example, prompt)
    shard = dist.shard(rows)
    batch = runner.encode([e.source for _, e in shard], [e.target for _, e in shard])
    tokens = dist.sum(torch.as_tensor(target_units(batch), dtype=torch.float32, device=batch.labels.device))
    which = torch.tensor([index for index, _ in shard], device=runner.device)
    sources = sources.to(runner.device)
    plan = runner.pass_plan(1, batch, projector.spec.prompt_length)
    total = torch.zeros((), device=runner.device)
    for _, part in plan.chunks():  # one pass, or chunks with the gradients accumulated
        prompts = projector(sources)[which[part]]  # (B', l, d_tgt): the graph reaches the projector's weights
        loss_sum = runner.batch_loss_sum(prompts, batch.rows(part))
        (loss_sum / tokens).backward()
        total = total + loss_sum.detach()
    sum_gradients(dist, list(projector.parameters()))
    return dist.sum(total) / tokens


def train_on_tasks(
    runner: FrozenT5Runner,
    projector: PromptProjector,
    sources: torch.Tensor,
    serves: dict[str, list[int]],
    train_by_task: dict[str, list[TextExample]],
    config: ProjectorConfig,
    *,
    files: RunFiles | None = None,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[ProjectorStepRecord], None] | None = None,
    dist: Distributed = SINGLE,
) -> PromptProjector:
    """Task tuning: train the projector on the frozen target model's loss of the training tasks
    (`train_by_task`, mixed example-proportionally, `batch_size` examples a step), each example under
    the projections of the source prompts that serve its task (`task_loss_and_gradients`)."""
    missing = [task for task in train_by_task if not serves.get(task)]
    if missing:
        raise ValueError(f"no source prompt serves {missing}")  # the job pairs every task with a prompt
    projector.to(runner.device)

    def step_loss(generator: torch.Generator) -> torch.Tensor:
        pairs = mixed_batch(train_by_task, batch_size=config.batch_size, generator=generator)
        return task_loss_and_gradients(runner, projector, sources, serves, pairs, dist)

    return _run(projector, config, step_loss, files=files, on_start=on_start, on_step=on_step, dist=dist,
                what="cross-entropy")


def distance_loss(projector: PromptProjector, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the projected `sources` `(K, l, d_src)` and `targets` `(K, l, d_tgt)`
    (the mean over every element)."""
    return torch.mean((projector(sources) - targets) ** 2)


def train_on_distance(
    projector: PromptProjector,
    sources: torch.Tensor,
    targets: torch.Tensor,
    config: ProjectorConfig,
    *,
    files: RunFiles | None = None,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[ProjectorStepRecord], None] | None = None,
    dist: Distributed = SINGLE,
) -> PromptProjector:
    """Distance minimizing: train the projector so that it maps each source-model prompt `sources[k]`
    onto the target model's prompt of the same task `targets[k]` (all K pairs every step; data-parallel
    processes each compute the same full step)."""
    device = projector.first.weight.device
    sources, targets = sources.to(device), targets.to(device)

    def step_loss(generator: torch.Generator) -> torch.Tensor:  # noqa: ARG001 — every pair, every step
        loss = distance_loss(projector, sources, targets)
        loss.backward()
        return loss.detach()

    return _run(projector, config, step_loss, files=files, on_start=on_start, on_step=on_step, dist=dist,
                what="distance")  # every process computes the same step; the main one writes
