"""What every training loop shares: resume, the settings fingerprint, periodic and on-signal
checkpoints, the step log and the stop request. The loops (`svgd.train`, `adapter.train`) keep only
their method: what a step computes and which tensors a checkpoint holds beside the common state.

    loop = TrainingLoop(files, total_steps=..., checkpoint_every=..., optimizer=..., scheduler=..., generator=...)
    state = loop.resume()                      # None, or the checkpoint (optimizer, scheduler, RNG restored)
    with loop:
        while loop.step < loop.total_steps:
            ...one step...
            loop.end_step(record, method_state)  # log, checkpoint when due, stop when asked
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bmtpt_cli.runtime.checkpoint import (
    LOWERABLE,
    Interrupted,
    StepAbandoned,
    StepLog,
    StopRequests,
    capture_rng,
    check_fingerprint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from bmtpt_cli.runtime.distributed import SINGLE, Distributed
from bmtpt_cli.runtime.extend import grown_steps, reapply_schedule
from bmtpt_cli.runtime.resume_checks import check_fields, check_resumable


@dataclass(frozen=True)
class RunFiles:
    """Where a run keeps its checkpoint and step log, whether it resumes, and what it must agree on.

    `fingerprint`: the resolved settings that change the result; saved in every checkpoint and
    compared on resume. No checkpoint path: the run keeps no checkpoint (the few-shot cells).
    """

    checkpoint: Path | None = None
    log: Path | None = None
    resume: bool = False
    fingerprint: dict[str, Any] = field(default_factory=dict)
    tracker: Any = None  # runtime.tracking.TrackedRun: where the step records also go (--report-to)


def config_fingerprint(config: Any, *, ignore: tuple[str, ...] = ("checkpoint_every",)) -> dict[str, Any]:
    """A config dataclass as a dict, without the fields that do not change the result, and the bmtpt
    version (another version may compute differently: its checkpoints and results are not resumed)."""
    import bmtpt_cli

    fields = {key: value for key, value in asdict(config).items() if key not in ignore}
    return {**fields, "bmtpt_version": bmtpt_cli.__version__}


class TrainingLoop:
    """Resume, checkpoints, step log and stop requests around one training loop (see the module doc)."""

    def __init__(
        self,
        files: RunFiles | None,
        *,
        total_steps: int,
        checkpoint_every: int,
        optimizer,
        scheduler,
        generator,
        dist: Distributed = SINGLE,
    ):
        self.files = files or RunFiles()
        self.total_steps = total_steps
        self.checkpoint_every = checkpoint_every
        self.optimizer, self.scheduler, self.generator = optimizer, scheduler, generator
        self.dist = dist
        self.step = 0
        self._log: StepLog | None = None
        self._stop: StopRequests | None = None
        self.lr_changes: list[dict[str, Any]] = []  # learning rates lowered on resume (kept in checkpoints)
        self._note: dict[str, Any] = {}  # added to the next step's log record (a lowering on resume)
        # A stop within a step (`StepAbandoned`) saves the state the step started from: the method's
        # state as of the last `end_step`, the RNG the step started with, if no update happened since.
        self._method_state: Callable[[], dict[str, Any]] | None = None
        self._step_rng: tuple | None = None  # (data generator, torch) states when the step began
        self._updated = False  # the optimizer stepped since the last `end_step`
        self._hook = None
        self._saved_step: int | None = None  # the step of the checkpoint on disk, when known

    def resume(self) -> dict[str, Any] | None:
        """With `resume`: read the checkpoint, refuse other settings, restore optimizer, scheduler
        and every RNG, and return the checkpoint so the loop can restore its own tensors."""
        if not self.files.resume:
            return None
        path = self.files.checkpoint
        state = load_checkpoint(path)
        check_fields(path, state)
        saved, extended = grown_steps(state["fingerprint"], self.files.fingerprint)  # --steps may grow (runtime/extend.py)
        lowered = check_fingerprint(path, saved, self.files.fingerprint, lowerable=LOWERABLE)  # names a changed setting
        check_resumable(path, state, total_steps=self.total_steps, optimizer=self.optimizer, scheduler=self.scheduler)
        base_lrs = list(self.scheduler.base_lrs)  # this run's, lower than the checkpoint's where `lowered`
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], self.generator)
        self.step = state["step"]
        self._saved_step = self.step
        self.lr_changes = list(state.get("lr_changes", []))
        if lowered:
            self._rebase_learning_rates(base_lrs)
            change = {"step": self.step, **{key: {"was": was, "now": now} for key, (was, now) in lowered.items()}}
            self.lr_changes.append(change)
            self._note = {"lr_lowered": change}
        if extended:
            self._note = {**self._note, "steps_extended": {"step": self.step, **extended, "lr": reapply_schedule(self.optimizer, self.scheduler)}}
        return state

    def _rebase_learning_rates(self, base_lrs: list[float]) -> None:
        """After a resume with lowered learning rates (`LOWERABLE`): the restored optimizer and
        schedule continue from the checkpoint's step with this run's base rates."""
        self.scheduler.base_lrs = list(base_lrs)
        for group, base in zip(self.optimizer.param_groups, base_lrs):
            group["initial_lr"] = base
        reapply_schedule(self.optimizer, self.scheduler)

    def __enter__(self) -> TrainingLoop:
        log_path = self.files.log if self.dist.is_main else None  # one process writes the log
        self._log = StepLog(log_path, resume_step=self.step if self.files.resume else None)
        if self.files.tracker is not None:  # like the log: drop what came after the checkpoint
            self.files.tracker.rewind(self.step)
        self._stop = StopRequests(abandon=not self.dist.enabled).__enter__()  # data-parallel: between steps only
        if self.optimizer is not None and hasattr(self.optimizer, "register_step_post_hook"):
            self._hook = self.optimizer.register_step_post_hook(self._mark_updated)
        self._step_began()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._stop.__exit__(exc_type, exc, traceback)
        if self._hook is not None:
            self._hook.remove()
        self._log.close()
        if isinstance(exc, StepAbandoned):
            raise self._abandoned(exc.signal_name) from None

    def _mark_updated(self, *_) -> None:
        self._updated = True

    def _step_began(self) -> None:
        """Note what a step that is abandoned must restore (7 µs: the data generator's and torch's
        RNG states; a step draws its batch from the one and may use the other)."""
        import torch

        self._updated = False
        self._step_rng = (self.generator.get_state(), torch.get_rng_state()) if self.generator is not None else None

    def _abandoned(self, signal_name: str) -> Interrupted:
        """A stop arrived during a step and its next pass raised `StepAbandoned`: save the state
        the step started from when nothing was updated yet (a step's passes only compute the
        gradient), so `--resume` redoes the step bit for bit; otherwise (adaptation's dev
        evaluation, after the update) the last checkpoint stays the resume point."""
        step = self.step if self._updated else self.step + 1
        during = f"stopped by {signal_name} during step {step}, which was abandoned"
        path = self.files.checkpoint
        if path is None or not self.dist.is_main:
            return Interrupted(f"{during}: no checkpoint kept")
        if not self._updated and self._method_state is not None and self._step_rng is not None:
            rng = capture_rng(self.generator)
            rng["data"], rng["torch"] = self._step_rng
            self.save(self._method_state(), rng=rng)
            return Interrupted(f"{during}: step {self.step}'s state saved to '{path}' — rerun the same command with --resume")
        if self._saved_step is not None and Path(path).is_file():
            return Interrupted(
                f"{during}: the checkpoint '{path}' (step {self._saved_step}) is where it continues — rerun the same "
                "command with --resume"
            )
        return Interrupted(f"{during} before any checkpoint: rerun the same command")

    def end_step(self, record: dict[str, Any], method_state: Callable[[], dict[str, Any]]) -> None:
        """After step `self.step` (already counted): log `record`; checkpoint every `checkpoint_every`
        steps, at the end, and when a stop was requested; then stop if one was."""
        self._log.write({**record, **self._note})
        if self.files.tracker is not None:
            self.files.tracker.log({**record, **self._note})
        self._note = {}
        stop = self._stop.requested
        if self.step % self.checkpoint_every == 0 or self.step == self.total_steps or stop:
            self.save(method_state())
        self._method_state = method_state
        self._step_began()
        if stop and self.step < self.total_steps:
            where = f"checkpoint saved to '{self.files.checkpoint}'" if self.files.checkpoint else "no checkpoint kept"
            raise Interrupted(f"stopped by {stop} after step {self.step}: {where} — rerun the same command with --resume")

    def save(self, method_state: dict[str, Any], *, rng: dict[str, Any] | None = None) -> None:
        """Write the checkpoint: the loop's tensors plus optimizer, scheduler, RNG (`rng`, default:
        the states now), step, fingerprint."""
        if self.files.checkpoint is None or not self.dist.is_main:  # every process holds the same state
            return
        save_checkpoint(
            self.files.checkpoint,
            {
                **method_state,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": capture_rng(self.generator) if rng is None else rng,
                "step": self.step,
                "fingerprint": self.files.fingerprint,
                **({"lr_changes": self.lr_changes} if self.lr_changes else {}),
            },
        )
        self._saved_step = self.step

    def last_good(self, lower: str = "") -> str:
        """Where a run stopped by a numerical failure can be resumed from (no artifact is written);
        `lower`: the learning-rate flags to lower, with their values (e.g. `--lr (now 0.3)`)."""
        path = self.files.checkpoint
        fix = f" and a lower {lower}" if lower else ""
        if path is not None and Path(path).is_file():
            step = self._saved_step if self._saved_step is not None else load_checkpoint(path)["step"]
            return f"no artifact written; the last good checkpoint is '{path}' (step {step}): resume from it with --resume{fix}"
        rerun = f": rerun with a lower {lower}" if lower else ""
        return f"no artifact written and no checkpoint yet{rerun}"
