"""Training checkpoints and step logs shared by `source` and `adapt`.

A checkpoint holds everything needed to continue a run exactly: trainable tensors, optimizer and
scheduler state, the step, the RNG states (torch global, the data-order generator, python, numpy) and a
fingerprint of the settings that change the result, so `--resume` can refuse a mismatched run.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import torch

from bmtpt_cli.runtime.files import atomic_write, write_text_atomic
from bmtpt_cli.runtime.resume_checks import is_number
from bmtpt_cli.errors import BmtptError, excerpt


def capture_rng(generator: torch.Generator) -> dict[str, Any]:
    """The RNG states a run depends on: torch (CPU and CUDA), the data generator, python, numpy.

    Stored as tensors and plain values only, so `torch.load(weights_only=True)` can read them back.
    """
    state = {"torch": torch.get_rng_state(), "data": generator.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
    except ImportError:  # numpy is optional for bmtpt itself
        return state
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state["numpy"] = (kind, torch.from_numpy(keys.astype("int64")), int(position), int(has_gauss), float(gauss))
    return state


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    """Put back the RNG states saved by `capture_rng`."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        kind, keys, position, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), position, has_gauss, gauss))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (the previous one stays intact until the new one is complete)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; a missing or damaged one is a user error."""
    path = Path(path)
    if not path.is_file():
        raise BmtptError(f"--resume given but no checkpoint at '{path}': run without --resume to start fresh")
    check_zip_crcs(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — torch raises several types for damaged files
        raise BmtptError(f"checkpoint '{path}' cannot be read ({type(exc).__name__}): delete it and start fresh") from exc


def check_zip_crcs(path: Path) -> None:
    """Refuse a checkpoint whose zip records (the tensors and the pickle `torch.save` writes) fail
    their CRC-32: `torch.load` never checks them, so a changed bit would otherwise load silently.
    Reading every record once costs about as much as the load itself."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as exc:  # noqa: BLE001 — zipfile raises several types for damaged archives
        raise BmtptError(f"checkpoint '{path}' cannot be read ({type(exc).__name__}): delete it and start fresh") from None
    if bad is not None:
        raise BmtptError(
            f"checkpoint '{path}' is damaged (record {excerpt(bad)} fails its checksum, a changed bit on disk): "
            "delete it and start fresh"
        )


LOWERABLE = ("lr", "lr_shared", "lr_scales")
"""Learning rates a resume from an unfinished run's checkpoint may lower, never raise: the way on
after a divergence (runtime/divergence.py); `TrainingLoop.resume` records the change."""


def check_fingerprint(
    path: Path, saved: dict[str, Any], current: dict[str, Any], *, lowerable: tuple[str, ...] = ()
) -> dict[str, tuple[Any, Any]]:
    """Refuse to resume when a setting that changes the result differs from the checkpoint's.

    The one allowance: a number in `lowerable` (`LOWERABLE`, passed by the training loop) may be
    lower now than it was; returns those lowered settings as {key: (was, now)}."""
    lowered = {}
    for key in sorted(set(saved) | set(current)):
        was, now = saved.get(key), current.get(key)
        if key in lowerable and is_number(was) and is_number(now) and 0 < now < was:
            lowered[key] = (was, now)
            continue
        if saved.get(key) != current.get(key):
            lower = f" (or a lower --{key.replace('_', '-')})" if key in lowerable else ""
            raise BmtptError(
                f"cannot resume from '{path}': setting '{key}' was {saved.get(key)!r}, now {current.get(key)!r} — "
                f"use the same settings{lower}, or start fresh with --force"
            )
    return lowered


class StepLog:
    """JSON-lines log, one record per step; on resume it keeps only the records up to the checkpoint.

    A fresh run removes an earlier log and creates the file with its first record, so a run that
    dies before its first step leaves no empty log behind.
    """

    def __init__(self, path: Path | None, *, resume_step: int | None):
        self._handle = None
        self.path = None if path is None else Path(path)  # None: a non-main process, logs nothing
        if self.path is None:
            return
        if resume_step is not None and self.path.is_file():
            kept = "".join(json.dumps(r) + "\n" for r in resumed_records(self.path, resume_step))
            write_text_atomic(self.path, kept)
            self._handle = open(self.path, "a", encoding="utf-8")
        elif resume_step:  # a log of only the resumed steps would pass for the whole run's
            raise BmtptError(
                f"the step log '{self.path}' of the run being resumed (at step {resume_step}) is missing: put it back, "
                "or start fresh without --resume and with --force"
            )
        else:
            self.path.unlink(missing_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        created = self._handle is None and not self.path.exists()
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")
        try:
            self._handle.write(json.dumps(_finite(record)) + "\n")
            self._handle.flush()
        except OSError:  # a full disk at the first record: leave no empty log behind
            if created:
                self._discard_if_empty()
            raise

    def _discard_if_empty(self) -> None:
        handle, self._handle = self._handle, None
        try:
            handle.close()
        except OSError:
            pass
        if self.path.is_file() and self.path.stat().st_size == 0:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, so the log stays JSON (which has
    no `NaN` or `Infinity`); the training loops stop before a step would produce one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def read_jsonl_records(path: Path) -> list[dict]:
    """The complete records of a JSON-lines file a run appends to (a torn last line is dropped, and
    so is any line that is not a JSON object in UTF-8: what a killed run, or a resumed one appending
    after a torn line, leaves)."""
    lines = Path(path).read_bytes().splitlines()
    return [record for record in map(_parse_line, lines) if record is not None]


def _parse_line(line: bytes) -> dict | None:
    """A log record, or None for a line a killed run left half-written."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def resumed_records(path: Path, step: int) -> list[dict]:
    """The step log's records of steps 1 to `step`, the checkpoint's; refused in one line unless the
    log holds exactly those steps in order first (a torn line after them is what a kill leaves)."""
    lines = Path(path).read_bytes().splitlines()
    kept = []
    for number, line in enumerate(lines[:step], 1):
        record = _parse_line(line)
        found = record.get("step") if record is not None else None
        if type(found) is not int or found != len(kept) + 1:
            what = "is not a JSON record" if record is None else f"has step {excerpt(found)}"
            raise BmtptError(
                f"the step log '{path}' does not hold steps 1 to {step} of the checkpoint in order (line {number} {what}): "
                "put back the run's own log, or start fresh without --resume and with --force"
            )
        kept.append(record)
    if len(kept) < step:
        raise BmtptError(
            f"the step log '{path}' holds {len(kept)} steps, the checkpoint is at step {step}: put back the run's own "
            "log, or start fresh without --resume and with --force"
        )
    return kept


class StepAbandoned(BaseException):
    """Raised by `check_stop` between two passes of the model when a stop was requested during a
    step: the step is abandoned (the training loop turns this into `Interrupted`). A BaseException,
    like KeyboardInterrupt, so no `except Exception` on the way swallows it."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


_ACTIVE: list["StopRequests"] = []  # the StopRequests entered (a stack: the innermost is last)


def check_stop() -> None:
    """Called before every pass of the model (`FrozenT5Runner`): raise `StepAbandoned` when the
    innermost active `StopRequests` allows abandoning a step and a stop was requested."""
    if _ACTIVE and _ACTIVE[-1].abandon and _ACTIVE[-1].requested:
        raise StepAbandoned(_ACTIVE[-1].requested)


class StopRequests:
    """Turns SIGINT/SIGTERM into a flag the training loop checks between steps, and (with
    `abandon`) `check_stop` between the passes of a step.

    Between steps the loop saves a checkpoint and stops; within a step, the next pass raises
    `StepAbandoned` and the loop saves the state the step started from (`TrainingLoop.__exit__`),
    so a long step need not finish. A second Ctrl-C falls back to Python's default (immediate
    KeyboardInterrupt).
    """

    def __init__(self, *, abandon: bool = False):
        self.requested: str | None = None
        self.abandon = abandon
        self._previous: dict = {}

    def _handle(self, signum, frame):  # noqa: ARG002 — signal handler signature
        import signal

        self.requested = signal.Signals(signum).name
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else self._previous[signum])

    def __enter__(self) -> StopRequests:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self in _ACTIVE:
            _ACTIVE.remove(self)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Interrupted(BmtptError):
    """The run was stopped by a signal after saving a checkpoint; exit code 130 like a shell's Ctrl-C."""

    exit_code = 130
