"""The Typer root: every bmtpt command is registered here, in one visible place."""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

try:  # Typer vendors its own Click (typer._click) since 0.2x; older ones use Click itself
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError

from bmtpt_cli.commands.adapt import adapt_command
from bmtpt_cli.commands.evaluate import evaluate_command
from bmtpt_cli.commands.export import export_command
from bmtpt_cli.commands.fewshot import fewshot_command
from bmtpt_cli.commands.project import project_command
from bmtpt_cli.commands.reproduce import reproduce_command
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
    "project": project_command,
    "reproduce": reproduce_command,
}


class OneLineErrors(TyperGroup):
    """The root group: a usage error (an unknown flag, a value of the wrong type, a missing argument)
    is one line on stderr, `error: MESSAGE (see 'bmtpt CMD --help')`, exit 2, like every other error
    of bmtpt, instead of Click's usage box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # `bmtpt` alone: building the error printed the help, as before
            sys.exit(exc.exit_code)
        except ClickException as exc:
            typer.echo(usage_error_line(exc), err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def usage_error_line(exc: ClickException) -> str:
    """Click's message of `exc` on one line, with the command whose `--help` explains the options."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    command = context.command_path if context is not None else "bmtpt"
    return f"error: {message} (see '{command} --help')"


app = typer.Typer(
    cls=OneLineErrors,
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
