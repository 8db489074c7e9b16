"""Experiment tracking (`--report-to`, the Hugging Face `report_to` names): the step records a run
writes to its step log, and its resolved settings, also sent to a CSV file, TensorBoard, MLflow or
Weights & Biases.

One small interface, whatever the backend:

    with open_tracker(report_to, out, settings, resume=resume) as tracker:   # start(settings) … finish()
        run = tracker.run()            # one training loop's view (a few-shot cell: tracker.run("pt/k4/rte/seed0"))
        run.rewind(step)               # TrainingLoop: drop what came after the checkpoint (0: a fresh start)
        run.log(record)                # TrainingLoop.end_step: the record the step log holds

Where the files go (beside the output, `runtime.outputs.sidecar`):

- `csv`: `<out>.csv`, one row per step record (nested values flattened: `dev/rte`, `particle_losses/0`;
  with several runs a first column `run`), and the settings as `<out>.settings.json`;
- `tensorboard`: the event files in `<out>.tb/` (a multi-run command: one folder per run), each
  number of the record a scalar tagged by its flattened name, the settings as the text `settings`;
- `mlflow`, `wandb`: one run per command, through the package's own configuration (MLFLOW_TRACKING_URI,
  MLFLOW_EXPERIMENT_NAME; WANDB_PROJECT, WANDB_MODE=offline for no network). Optional extras:
  `pip install 'bmtpt[mlflow]'` / `'bmtpt[wandb]'`, imported only when asked for.

With `--resume` the CSV rows and TensorBoard events after the checkpoint's step are dropped, as the
step log's are; MLflow and W&B start a new run tagged with the step it resumed at (their stores keep
what was logged). A multi-run command (the few-shot cells, transfer-matrix --tune) replaces the rows
of a run it trains again.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.files import atomic_write, write_text_atomic
from bmtpt_cli.runtime.outputs import sidecar

REPORT_TO = ("none", "csv", "tensorboard", "mlflow", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
"""The package each backend imports; its bmtpt extra has the same name (`pip install 'bmtpt[NAME]'`)."""


def check_installed(report_to: str) -> str:
    """Refuse, in one line naming the extra to install, a backend whose package is missing."""
    package = PACKAGES.get(report_to)
    if package is not None and not _installed(package):
        raise BmtptError(
            f"--report-to {report_to} needs the {package} package, which is not installed: "
            f"pip install 'bmtpt[{report_to}]' (or choose --report-to csv, which needs nothing)"
        )
    return report_to


def _installed(package: str) -> bool:
    """Whether `import package` can work: already imported (None there: known to fail), or found."""
    if package in sys.modules:
        return sys.modules[package] is not None
    return importlib.util.find_spec(package) is not None


def _import(report_to: str):
    check_installed(report_to)
    try:
        return importlib.import_module(PACKAGES[report_to])
    except ImportError as exc:
        raise BmtptError(
            f"--report-to {report_to}: the {PACKAGES[report_to]} package does not import ({exc}): "
            f"pip install --upgrade 'bmtpt[{report_to}]'"
        ) from None


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A record's values under flat names: nested dicts and lists as `key/sub` (`dev/rte`, `particle_losses/0`)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}/")
        elif isinstance(value, (list, tuple)):
            flat |= flatten(dict(enumerate(value)), f"{name}/")
        else:
            flat[name] = value
    return flat


def _numbers(flat: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


class TrackedRun:
    """One training loop's view of a tracker: what `TrainingLoop` calls (`run` None: the command's only run)."""

    def __init__(self, tracker: Tracker, run: str | None):
        self.tracker, self.name = tracker, run

    def rewind(self, step: int) -> None:
        """Drop what this run logged after `step` (0: everything; it starts again)."""
        self.tracker.backend.rewind(step, self.name)

    def log(self, record: dict[str, Any]) -> None:
        """One step record, as the step log holds it."""
        self.tracker.backend.log(record, self.name)


class Tracker:
    """A command's tracking session: `start(settings)`, step records through `run()`, `finish()`."""

    def __init__(self, report_to: str, out: Path, *, resume: bool = False, enabled: bool = True):
        if report_to not in REPORT_TO:
            raise BmtptError(f"unknown --report-to '{report_to}': use one of {', '.join(REPORT_TO)}")
        self.report_to = report_to
        backend = BACKENDS.get(report_to) if enabled else None
        self.backend = backend(Path(out), resume) if backend else _Backend(Path(out), resume)

    def start(self, settings: dict[str, Any]) -> None:
        self.backend.start(settings)

    def run(self, name: str | None = None) -> TrackedRun | None:
        """The view a training loop logs through (None when nothing is tracked)."""
        return None if type(self.backend) is _Backend else TrackedRun(self, name)

    def finish(self, ok: bool = True) -> None:
        self.backend.finish(ok)


@contextlib.contextmanager
def open_tracker(report_to: str, out: Path, settings: dict[str, Any], *, resume: bool = False,
                 enabled: bool = True) -> Iterator[Tracker]:
    """A started tracker for `out` (`enabled` False: a process that logs nothing), finished on exit."""
    tracker = Tracker(report_to, out, resume=resume, enabled=enabled)
    tracker.start(settings)
    ok = False
    try:
        yield tracker
        ok = True
    finally:
        tracker.finish(ok)


# ----------------------------------------------------------------------------- backends
class _Backend:
    """`--report-to none`: nothing is written."""

    def __init__(self, out: Path, resume: bool):
        self.out, self.resume = out, resume

    def start(self, settings: dict[str, Any]) -> None:
        pass

    def rewind(self, step: int, run: str | None) -> None:
        pass

    def log(self, record: dict[str, Any], run: str | None) -> None:
        pass

    def finish(self, ok: bool) -> None:
        pass


class CsvBackend(_Backend):
    """`<out>.csv`, one row per record, the columns the union of the records' flattened names."""

    def __init__(self, out: Path, resume: bool):
        super().__init__(out, resume)
        self.path = sidecar(out, ".csv")
        self.settings_path = sidecar(out, ".settings.json")
        self.columns: list[str] = []
        self._handle = None

    def start(self, settings: dict[str, Any]) -> None:
        for path in (self.path, self.settings_path):
            _refuse_directory(path, "csv")
        if not self.resume:
            self.path.unlink(missing_ok=True)
        elif self.path.is_file():
            self.columns = self._read()[0]
        write_text_atomic(self.settings_path, json.dumps(settings, indent=2, sort_keys=True) + "\n")

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        with open(self.path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows

    def _rewrite(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        self._close()

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.path, write)
        self.columns = columns

    def rewind(self, step: int, run: str | None) -> None:
        if not self.path.is_file():
            return
        columns, rows = self._read()
        kept = [row for row in rows if row.get("run", "") != (run or "") or int(row["step"]) <= step]
        if len(kept) != len(rows):
            self._rewrite(columns, kept)

    def log(self, record: dict[str, Any], run: str | None) -> None:
        row = ({"run": run} if run is not None else {}) | flatten(record)
        row = {key: "" if value is None else value for key, value in row.items()}
        new = [key for key in row if key not in self.columns]
        if new:  # a name not seen before (e.g. the first dev evaluation): widen the file's header
            columns = self.columns + new
            if "run" in columns:
                columns = ["run"] + [c for c in columns if c != "run"]
            self._rewrite(columns, self._read()[1] if self.path.is_file() else [])
        if self._handle is None:
            self._handle = open(self.path, "a", newline="", encoding="utf-8")
        csv.DictWriter(self._handle, fieldnames=self.columns).writerow(row)
        self._handle.flush()

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish(self, ok: bool) -> None:
        self._close()


class TensorBoardBackend(_Backend):
    """`<out>.tb/`: a SummaryWriter per run (a multi-run command: `<out>.tb/<run>/`)."""

    def __init__(self, out: Path, resume: bool):
        super().__init__(out, resume)
        self.directory = sidecar(out, ".tb")
        self.writers: dict[str | None, Any] = {}
        _import("tensorboard")  # torch.utils.tensorboard writes through it
        self._summary_writer = _summary_writer()

    def _folder(self, run: str | None) -> Path:
        return self.directory if run is None else self.directory / _safe(run)

    def start(self, settings: dict[str, Any]) -> None:
        if self.directory.exists() and not self.directory.is_dir():
            raise BmtptError(
                f"'{self.directory}' is a file, but --report-to tensorboard writes a folder there: move it away or choose another --out"
            )
        if not self.resume:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(exist_ok=True)
        writer = self._summary_writer(str(self.directory))
        writer.add_text("settings", "```\n" + json.dumps(settings, indent=2, sort_keys=True) + "\n```")
        writer.close()

    def rewind(self, step: int, run: str | None) -> None:
        if run in self.writers:
            self.writers.pop(run).close()
        if step == 0 and run is not None:
            shutil.rmtree(self._folder(run), ignore_errors=True)  # the run starts again: its events go
        # purge_step: readers drop this folder's earlier events from that step on (a resumed run)
        self.writers[run] = self._summary_writer(str(self._folder(run)), purge_step=step + 1 if step else None)

    def log(self, record: dict[str, Any], run: str | None) -> None:
        if run not in self.writers:
            self.rewind(0, run)
        writer, step = self.writers[run], int(record["step"])
        flat = flatten(record)
        for tag, value in _numbers(flat).items():
            writer.add_scalar(tag, value, global_step=step)
        for tag, value in flat.items():
            if isinstance(value, str):
                writer.add_text(tag, value, global_step=step)

    def finish(self, ok: bool) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def _refuse_directory(path: Path, report_to: str) -> None:
    if path.is_dir():
        raise BmtptError(f"'{path}' is a directory, but --report-to {report_to} writes a file there: move it away or choose another --out")


def _summary_writer():
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def _safe(run: str) -> str:
    """A run name as one folder name."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in run)


class MlflowBackend(_Backend):
    """One MLflow run per command: the settings as params, the records' numbers as metrics."""

    def __init__(self, out: Path, resume: bool):
        super().__init__(out, resume)
        self.mlflow = _import("mlflow")

    def start(self, settings: dict[str, Any]) -> None:
        self.mlflow.start_run(run_name=self.out.name, tags={"bmtpt.out": str(self.out), "bmtpt.resumed": str(self.resume)})
        self.mlflow.log_params({key: str(value)[:500] for key, value in flatten(settings).items()})

    def rewind(self, step: int, run: str | None) -> None:
        if step:
            self.mlflow.set_tag("bmtpt.resumed_at_step" + (f".{run}" if run else ""), str(step))

    def log(self, record: dict[str, Any], run: str | None) -> None:
        prefix = f"{run}/" if run else ""
        self.mlflow.log_metrics({prefix + k: v for k, v in _numbers(flatten(record)).items()}, step=int(record["step"]))

    def finish(self, ok: bool) -> None:
        self.mlflow.end_run(status="FINISHED" if ok else "FAILED")


class WandbBackend(_Backend):
    """One W&B run per command (project $WANDB_PROJECT, else bmtpt); each record one `log` call."""

    def __init__(self, out: Path, resume: bool):
        super().__init__(out, resume)
        self.wandb = _import("wandb")
        self.active = None

    def start(self, settings: dict[str, Any]) -> None:
        import os

        self.active = self.wandb.init(
            project=os.environ.get("WANDB_PROJECT", "bmtpt"), name=self.out.name, config=settings,
            tags=["resumed"] if self.resume else None,
        )

    def log(self, record: dict[str, Any], run: str | None) -> None:
        prefix = f"{run}/" if run else ""
        flat = flatten(record)
        self.active.log({prefix + k: v for k, v in flat.items() if isinstance(v, (int, float, str))})

    def finish(self, ok: bool) -> None:
        if self.active is not None:
            self.active.finish(exit_code=0 if ok else 1)


BACKENDS = {"csv": CsvBackend, "tensorboard": TensorBoardBackend, "mlflow": MlflowBackend, "wandb": WandbBackend}
