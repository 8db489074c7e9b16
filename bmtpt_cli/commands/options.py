"""Typer options generated from a command's settings model: one option per field.

The help text, the option's type and its panel come from the field (`settings.py`); a flag is
`--x/--no-x`. Every option defaults to None ("not given"), so a preset, a `BMTPT_*` variable or
the declared default applies unless the user types the flag; `resolve_settings` does the layering
and validation (bounds, choices), so errors name the flag, the variable or the preset key.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from pydantic.fields import FieldInfo

from bmtpt_cli.commands.display import user_errors
from bmtpt_cli.console import configure_output, err_console
from bmtpt_cli.runtime.threads import apply_threads
from bmtpt_cli.settings import PANELS, RUN, SETTINGS_BY_COMMAND, CommonSettings, resolve_settings

PRESET_HELP = "Preset: a name from presets/ (demo, tiny, glue6, …) or a path to a .toml file. Default: $BMTPT_PRESET, else demo (the toy world only: a real task, another model or an artifact of another world takes the built-in defaults)."
PRINT_CONFIG_HELP = "Print the settings this run resolves to (flags > BMTPT_* > the artifact read > preset > defaults), each with its origin, as TOML, and exit."


def settings_command(command: str, run: Callable[[CommonSettings], None], doc: str) -> Callable[..., None]:
    """A Typer command function for `command`: its options are the settings' fields plus `--preset`;
    it resolves the settings (flags > BMTPT_* > preset > defaults) and calls `run(settings)`."""
    settings_cls = SETTINGS_BY_COMMAND[command]
    names = _ordered_fields(settings_cls)

    def command_function(**options: Any) -> None:
        flags = {name: value for name, value in options.items() if value is not None and name not in CONTROL}
        with user_errors():
            run_command(command, run, options.get("preset"), flags, print_only=bool(options.get("print_config")))

    parameters = [_parameter(name, _option(name, settings_cls.model_fields[name])) for name in names]
    parameters.append(_parameter("preset", Annotated[Optional[str], typer.Option(help=PRESET_HELP, rich_help_panel=RUN)]))
    parameters.append(_parameter(
        "print_config",
        Annotated[bool, typer.Option("--print-config", help=PRINT_CONFIG_HELP, rich_help_panel=RUN, metavar="")], False,
    ))
    command_function.__signature__ = inspect.Signature(parameters)
    command_function.__annotations__ = {p.name: p.annotation for p in parameters}
    command_function.__doc__ = doc + DEFAULTS_NOTE
    command_function.__name__ = f"{command}_command"
    return command_function


def run_command(command: str, run: Callable[[CommonSettings], None], preset: str | None, flags: dict[str, Any], *,
                print_only: bool = False) -> None:
    """What `bmtpt COMMAND --preset P --flag …` does once its options are parsed: resolve the settings (flags >
    BMTPT_* > preset > defaults), set up the output and threads, and call `run(settings)` (`bmtpt reproduce`
    runs its plan's commands through here). Errors are `BmtptError`s, for the caller to show."""
    settings = resolve_settings(command, preset, flags)
    configure_output(verbose=settings.verbose, progress_every=settings.progress_every)  # before a library loads
    for note in settings.notes:
        err_console.print(note, markup=False, soft_wrap=True)
    if print_only:
        print_config(command, settings)
        return
    check_output_apart(command, settings)
    apply_threads(settings.threads, settings.model)  # before any torch work; provenance records it
    run(settings)


def _ordered_fields(settings_cls) -> list[str]:
    """The fields that get an option (all, or the settings class's `command_line`), grouped by help
    panel (in `PANELS` order), declaration order within a panel."""
    fields = settings_cls.model_fields
    shown = getattr(settings_cls, "command_line", None) or tuple(fields)  # a command may leave shared settings out
    return sorted((name for name in fields if name in shown), key=lambda name: PANELS.index(_panel(fields[name])))


def _panel(field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return str(extra.get("panel", RUN))


DEFAULTS_NOTE = (
    "\n\nDefaults shown are the built-in ones (the paper's); a preset changes some, and without --preset the"
    " laptop-sized demo preset applies to the toy world (another model, a real task or an artifact of another world"
    " takes the built-in ones). A model, prompt length and input format recorded in an --init, --prompts or"
    " --particles file apply unless given. --print-config shows what a run resolves to."
)

RUN_INPUTS = ("init", "prompts", "prompts_dir", "particles", "multitask", "source_prompts", "target_prompts", "projector", "data_dir")
"""Settings naming files or folders a run reads, which its output may not be (`check_output_apart`)."""
REPLACED_AS_A_WHOLE = ("export", "transfer-matrix")
"""Commands whose output directory is replaced as a whole, so an input may not be inside it either."""


def check_output_apart(command: str, settings: CommonSettings) -> None:
    """Refuse an output that is one of the run's inputs (`adapt --init p --out p`), however it is spelled."""
    from bmtpt_cli.runtime.outputs import check_not_an_input

    out = getattr(settings, "output", None) or getattr(settings, "out", None)
    if out is None:
        return
    unused = {"evaluate": "prompts" if getattr(settings, "shots", None) else "init"}.get(command)
    inputs = {}
    for name in RUN_INPUTS:
        value = getattr(settings, name, None) if name != unused else None
        for each in value if isinstance(value, list) else [value]:  # fewshot's sources are lists
            if each is None or str(each) == "random":
                continue
            inputs.setdefault(f"--{name.replace('_', '-')}", []).append(Path(str(each).removeprefix("retrieve:")))
    check_not_an_input(Path(out), inputs, replaces_directory=command in REPLACED_AS_A_WHOLE)


COMMAND_LINE_ONLY = ("force",)
"""Settings a preset, a `BMTPT_*` variable or a saved configuration may not set (`resolve_settings` refuses them)."""

CONTROL = ("preset", "print_config")
"""Options that steer the command rather than set a setting."""


def print_config(command: str, settings: CommonSettings) -> None:
    """The resolved settings as a TOML `[command]` table, each key commented with where its value came from."""
    from bmtpt_cli.console import console

    lines = [f"# bmtpt {command}: resolved settings (flags > BMTPT_* > the artifact read > preset > defaults)", f"[{command}]"]
    for name, value in settings.model_dump(mode="json").items():
        if name in COMMAND_LINE_ONLY:  # a file made from this output must not carry it
            lines.append(f"# {name}: command line only (--{name.replace('_', '-')}), never from a preset")
        elif value is None:
            lines.append(f"# {name} = (unset)  # {settings.origin(name)}")
        else:
            lines.append(f"{name} = {_toml(value)}  # {settings.origin(name)}")
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _toml(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _parameter(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _option(name: str, field: FieldInfo) -> Any:
    """`Annotated[Optional[T], typer.Option(...)]` for one settings field."""
    kind = _option_type(field.annotation)
    flag = f"--{name.replace('_', '-')}"
    declarations = [f"{flag}/--no-{flag[2:]}"] if kind is bool else []
    help_text = field.description or ""
    if field.default not in (None, []):
        help_text += f" (default: {_shown_default(field.default)})"
    extra = {"metavar": ""} if kind is bool else {}
    if kind is int:
        extra = {"parser": whole_number, "metavar": "INTEGER"}
    return Annotated[
        Optional[kind],
        typer.Option(*declarations, help=help_text, rich_help_panel=_panel(field), show_default=False, **extra),
    ]


INT64_MAX = 2**63 - 1
"""The largest integer an option takes: what PyTorch's generators and bmtpt's files hold (int64)."""


def whole_number(value: Any) -> int:
    """An integer option's value: a whole number within int64, else a one-line usage error that says
    which (instead of an overflow deep inside a run, or pydantic's parsing message)."""
    import re

    from pydantic_core import PydanticCustomError

    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        text = str(value).strip()
    shown = text if len(text) <= 24 else text[:20] + "…"
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise PydanticCustomError("whole_number", "{value} is not a whole number", {"value": repr(shown)})
    if len(text.lstrip("+-")) > 19 or abs(int(text)) > INT64_MAX:
        raise PydanticCustomError("too_large", "{value} is too large (at most {limit})", {"value": shown, "limit": INT64_MAX})
    return int(text)


def _shown_default(value: Any) -> str:
    """The built-in default as `--help` shows it (`a,b` for lists, the flag's name for booleans)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _option_type(annotation: Any) -> type:
    """The command-line type for a field's type: lists and choices are read as text (`a,b`, `rank`)
    and validated by the settings model; `X | None` is `X`."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _option_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _option_type(inner)
    if origin in (list, Literal):
        return str
    if annotation in (bool, int, float, str, Path):
        return annotation
    raise TypeError(f"no command-line type for settings type {annotation!r}")
