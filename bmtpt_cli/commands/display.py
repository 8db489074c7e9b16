"""What the commands show: one-line errors, rich progress on stderr, result tables on stdout."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import typer

from bmtpt_cli.console import console, err_console
from bmtpt_cli.errors import BmtptError, one_line
from bmtpt_cli.runtime.progress import Progress, Update


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `BmtptError` into one line on stderr and its exit code (2), with no traceback.

    `BMTPT_DEBUG=1` (or `bmtpt --debug`) re-raises instead, for bug reports.
    """
    try:
        yield
    except BmtptError as exc:
        if os.environ.get("BMTPT_DEBUG") == "1":
            raise
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/] {escape(one_line(str(exc)))}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None
    except OSError as exc:  # a full disk outside `atomic_write` (e.g. appending to a step log)
        from bmtpt_cli.runtime.files import disk_full

        if not disk_full(exc) or os.environ.get("BMTPT_DEBUG") == "1":
            raise
        where = f" writing '{exc.filename}'" if exc.filename else ""
        message = (f"no space left on the device{where} ({exc.strerror}): free some space and rerun (with --resume "
                   "if a checkpoint was saved); the files written before are intact")
        err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


class RichProgress(Progress):
    """Spinners, progress bars and notes on stderr (results stay alone on stdout); when stderr is not
    a terminal (a batch job's log), `PlainProgress`'s plain lines every `--progress-every` seconds."""

    def __init__(self) -> None:
        from bmtpt_cli import console as output
        from bmtpt_cli.runtime.progress import PlainProgress

        self.plain = None if err_console.is_terminal else PlainProgress(_err_line, every=output.PROGRESS_EVERY)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[None]:
        if self.plain:
            with self.plain.status(message):
                yield
            return
        with err_console.status(message):
            yield

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Update]:
        if self.plain:
            with self.plain.bar(description, total) as update:
                yield update
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichBar

        columns = (
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        )
        with RichBar(*columns, console=err_console, transient=False) as progress:
            task = progress.add_task(description, total=total, info="")
            yield lambda completed, info="": progress.update(task, completed=completed, info=info)

    def note(self, message: str) -> None:
        if self.plain:
            self.plain.note(message)  # one line, unwrapped
            return
        err_console.print(message, markup=False)


def _err_line(line: str) -> None:
    """One plain line on stderr, flushed (a log shows it at once), never wrapped."""
    stream = err_console.file
    stream.write(line + "\n")
    stream.flush()


def wrote(path) -> None:
    """Say which file a command wrote (the main process only; the others write nothing)."""
    from bmtpt_cli.runtime.distributed import is_main_process

    if is_main_process():
        console.print(f"wrote {path}", markup=False)


def render_dev(dev_metrics: dict[str, float]) -> None:
    """Print the kept prompts' dev metrics as a table."""
    from rich.table import Table

    table = Table(title="kept prompts (dev)")
    table.add_column("task")
    table.add_column("dev", justify="right")
    for task, value in dev_metrics.items():
        table.add_row(task, f"{value:.4f}")
    console.print(table)


def render_results(report: dict) -> None:
    """Print evaluation results as a table: the main metric (mean ± std over seeds for the few-shot
    probe) and every other metric of the task; a caption says when the scores are chance by design."""
    from rich.table import Table

    from bmtpt_cli.runner.model import TINY_MODEL

    caption = None
    if report.get("model") == TINY_MODEL:
        caption = "model 'tiny' has random weights: these scores are chance level (the run checks the pipeline, not the method)"
    table = Table(title="bmtpt evaluate", caption=caption)
    for column in ("task", "metric", "value", "other metrics", "decode", "split", "examples"):
        table.add_column(column, justify="right" if column in ("value", "examples") else "left")
    for row in report["results"]:
        value = f"{row['value']:.4f}" + (f" ± {row['std']:.4f}" if "std" in row else "")
        if row.get("examples") and row.get("invalid", 0) >= row["examples"] and "std" not in row:
            value = f"— ({row['invalid']}/{row['examples']} invalid)"  # every generation invalid: undefined, not 0
        others = " · ".join(f"{name} {v:.4f}" for name, v in row.get("metrics", {}).items() if name != row["metric"])
        table.add_row(row["task"], row["metric"], value, others, row["decode"], row["split"], str(row["examples"]))
    console.print(table)
