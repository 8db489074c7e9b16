"""The frame every training job shares (`source`, `source --per-task`, `adapt`), written once:

    lock and output check (`training_run`) → the job's data, runner and memory check →
    fingerprint (`run_fingerprint`) → progress bar, tracker, train with checkpoints and resume →
    save on the main process and drop the checkpoint (`train_then_save`).

A job states only what is its own: which data it reads, what it checks, the config it fingerprints,
the loop it calls and the artifact it writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from bmtpt_cli.data.config import DataConfig, examples_sha256
from bmtpt_cli.runner.load import RunnerConfig
from bmtpt_cli.runner.model import resolve_device
from bmtpt_cli.runtime.distributed import Distributed, data_parallel
from bmtpt_cli.runtime.files import main_process_lock
from bmtpt_cli.runtime.loop import RunFiles
from bmtpt_cli.runtime.outputs import RunOutput
from bmtpt_cli.runtime.progress import Progress, Update
from bmtpt_cli.runtime.tracking import open_tracker

Result = TypeVar("Result")


@contextlib.contextmanager
def training_run(output: RunOutput, runner: RunnerConfig) -> Iterator[tuple[Distributed, object]]:
    """The processes of a run (data parallel when launched so) on the configured device, the lock on
    its output (main process), and the output checked before anything else: yields (dist, device)."""
    with data_parallel(resolve_device(runner.device)) as (dist, device), main_process_lock(output.out, dist.is_main):
        output.check()
        yield dist, device


def run_fingerprint(config: dict, runner: RunnerConfig, data: DataConfig, tasks: list[str], examples, *,
                    evaluates: bool = True, **own) -> dict:
    """What a checkpoint of the run must agree on to be resumed: the loop's config, the job's own
    fields (`own`), the model, the tasks, the data settings and examples, and the runner settings."""
    return {
        **config, **own, "model": runner.model, "tasks": list(tasks), **data.fingerprint(),
        "data_sha256": examples_sha256(examples), **runner.fingerprint(evaluates=evaluates),
    }


def train_then_save(
    output: RunOutput,
    *,
    dist: Distributed,
    progress: Progress,
    label: str,
    steps: int,
    fingerprint: dict,
    report_to: str,
    settings: dict,
    train: Callable[[RunFiles, Update], Result],
    save: Callable[[Result], None],
    keep_checkpoint: bool = False,
) -> Result:
    """Train under a progress bar (`label`, `steps`) with the run's checkpoint, step log, resume and
    tracker (`train(files, update)`), then on the main process `save(result)` and remove the
    checkpoint, which the artifact replaces (kept with `keep_checkpoint`, so the run can be extended)."""
    tracking = open_tracker(report_to, output.out, settings, resume=output.resume, enabled=dist.is_main)
    with progress.bar(label, steps) as update, tracking as tracker:
        result = train(RunFiles(output.checkpoint, output.log, output.resume, fingerprint, tracker=tracker.run()), update)
    if dist.is_main:
        save(result)
        if not keep_checkpoint:
            output.checkpoint.unlink(missing_ok=True)
    return result
