"""Data parallelism over processes started by `torchrun` or `accelerate launch` (no process management here).

Every process draws the same batch (same seed, same generator), takes its share of the examples,
and computes sums of token losses and of their gradients; `all_reduce` adds them up so every
process holds the full-batch gradient and takes the identical optimizer step. Only the main
process writes files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bmtpt_cli.errors import BmtptError

if TYPE_CHECKING:  # torch is imported where it is used, so `is_main_process` stays cheap for the CLI
    import torch


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: rank and world size (1 process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, items: list) -> list:
        """This process's share of a batch: items rank, rank + W, rank + 2W, …"""
        if len(items) < self.world_size:
            raise BmtptError(
                f"a batch of {len(items)} examples cannot be shared by {self.world_size} processes: "
                f"raise the examples per step (--examples-per-task or --batch-size) or start fewer processes"
            )
        return items[self.rank :: self.world_size]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `tensor` over all processes (in place; a no-op for one process)."""
        if self.enabled:
            import torch.distributed

            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor


SINGLE = Distributed()


def is_main_process() -> bool:
    """Whether this process is the one that writes files and prints (RANK 0, or no launcher)."""
    return int(os.environ.get("RANK", "0")) == 0


def launched_world_size() -> int:
    """WORLD_SIZE as set by torchrun / accelerate launch (1 when started directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join the process group a launcher prepared (gloo on CPU, nccl on CUDA) and pick this rank's device."""
    if launched_world_size() <= 1:
        return SINGLE, device
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size()), device


def teardown_distributed(*, wait_for_all: bool = False) -> None:
    """Leave the process group (if one was joined); with `wait_for_all`, first wait until every process
    has reached this point, so no process tears its connections down while another (the main one,
    writing the outputs) still holds them open."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if wait_for_all:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def sum_gradients(dist: Distributed, parameters: list[torch.nn.Parameter]) -> None:
    """Add up every parameter's gradient over the processes.

    A parameter no process touched keeps `grad = None`, so the optimizer still skips it (a target
    task absent from the whole batch keeps its a and b); one touched anywhere gets the full sum.
    """
    if not dist.enabled:
        return
    import torch

    present = torch.tensor([p.grad is not None for p in parameters], dtype=torch.float32)
    dist.sum(present)
    for parameter, touched in zip(parameters, present.tolist()):
        if not touched:
            continue
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.sum(parameter.grad)


@contextlib.contextmanager
def data_parallel(device: torch.device) -> Iterator[tuple[Distributed, torch.device]]:
    """(Distributed, device) for this process: joins the group `torchrun`/`accelerate launch` set up."""
    dist, device = setup_distributed(device)
    try:
        yield dist, device
    except BaseException:  # the others may never reach a barrier: leave at once
        teardown_distributed()
        raise
    teardown_distributed(wait_for_all=True)
