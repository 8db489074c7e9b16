"""The Typer root: every bmtpt command is registered here, in one visible place."""

from __future__ import annotations

import os

import typer

from bmtpt_cli.commands.adapt import adapt_command
from bmtpt_cli.commands.evaluate import evaluate_command
from bmtpt_cli.commands.export import export_command
from bmtpt_cli.commands.fewshot import fewshot_command
from bmtpt_cli.commands.source import source_command
from bmtpt_cli.commands.tasks import tasks_command
from bmtpt_cli.commands.transfer_matrix import transfer_matrix_command

COMMANDS = {
    "source": source_command,
    "adapt": adapt_command,
    "evaluate": evaluate_command,
    "fewshot": fewshot_command,
    "tasks": tasks_command,
    "transfer-matrix": transfer_matrix_command,
    "export": export_command,
}

app = typer.Typer(
    name="bmtpt",
    help="Bayesian Multi-Task Prompt Tuning on a frozen T5: source → adapt → evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for name, function in COMMANDS.items():
    app.command(name)(function)


def _version(value: bool) -> None:
    if value:
        from bmtpt_cli import __version__

        typer.echo(f"bmtpt {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (for bug reports)."),
) -> None:
    """Bayesian Multi-Task Prompt Tuning on a frozen T5: source → adapt → evaluate."""
    if debug:
        os.environ["BMTPT_DEBUG"] = "1"  # read by commands.display.user_errors


def main() -> None:
    """Console-script entry point."""
    app()
