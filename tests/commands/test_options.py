"""Options generated from the settings: every field is a flag with its help, and they layer correctly."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from bmtpt_cli.app import COMMANDS, app
from bmtpt_cli.commands.options import settings_command
from bmtpt_cli.settings import SETTINGS_BY_COMMAND, build, resolve_settings
from clihelpers import bmtpt


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.upper().startswith("BMTPT_"):
            monkeypatch.delenv(name)


def _click_options(command: str) -> dict[str, object]:
    group = typer.main.get_command(app)
    return {param.name: param for param in group.commands[command].params}


@pytest.mark.parametrize("command", sorted(SETTINGS_BY_COMMAND))
def test_every_setting_is_an_option_with_its_description(command):
    options = _click_options(command)
    settings_cls = SETTINGS_BY_COMMAND[command]
    shown = getattr(settings_cls, "command_line", None) or tuple(settings_cls.model_fields)
    fields = {name: field for name, field in settings_cls.model_fields.items() if name in shown}
    assert set(options) == set(fields) | {"preset", "print_config"}
    for name, field in fields.items():
        assert options[name].help.startswith(field.description), name  # then "(default: …)"
        assert options[name].default is None, f"{name}: a default on the flag would hide the preset's value"
        if field.annotation is bool:
            assert options[name].opts == [f"--{name.replace('_', '-')}"]
            assert options[name].secondary_opts == [f"--no-{name.replace('_', '-')}"]


def test_help_lists_the_commands_and_groups_options_in_panels():
    assert set(COMMANDS) == {"source", "adapt", "evaluate", "tasks", "export", "transfer-matrix", "fewshot", "project", "reproduce"}
    result = bmtpt("adapt", "--help")
    assert result.exit_code == 0
    for panel in ("Data", "Model", "Method", "Optimisation", "Run control"):
        assert panel in result.output


def _capturing_app(command: str) -> tuple[typer.Typer, list]:
    seen: list = []
    capture = typer.Typer()
    capture.command(command)(settings_command(command, seen.append, "capture"))
    capture.command("unused")(lambda: None)  # two commands: Typer keeps the subcommand name
    return capture, seen


def test_flags_reach_the_settings_with_their_types(monkeypatch):
    capture, seen = _capturing_app("adapt")
    monkeypatch.setenv("BMTPT_BATCH_SIZE", "7")
    result = CliRunner().invoke(capture, ["adapt", "--tasks", "demo_rte,demo_review", "--steps", "5", "--no-prior", "--lr-shared", "0.1"])
    assert result.exit_code == 0, result.output
    (settings,) = seen
    assert settings.tasks == ["demo_rte", "demo_review"] and settings.steps == 5 and settings.lr_shared == 0.1
    assert settings.prior is False and settings.batch_size == 7  # the flag's negative form; the environment
    assert settings.eval_every == resolve_settings("adapt", None, {}).eval_every  # untouched: the demo preset's


@pytest.mark.parametrize(
    "args,named",
    [
        (["evaluate", "--seeds", "1,2"], ["--seeds", "--shots"]),
        (["evaluate", "--init", "random", "--steps", "3"], ["--init", "--steps", "--shots"]),
        (["evaluate", "--shots", "4", "--prompts", "p.safetensors"], ["--prompts", "--shots"]),
        (["source", "--damping", "0.5", "--damping-c", "2"], ["--damping", "--damping-c"]),
        (["adapt", "--no-prior", "--sigma", "3"], ["--sigma", "--no-prior"]),
    ],
)
def test_meaningless_combinations_are_refused_in_one_line(args, named, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = bmtpt(*args)
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in result.output
    for flag in named:
        assert flag in message
    assert list(tmp_path.iterdir()) == []


def test_an_environment_variable_for_another_command_is_no_combination_error(monkeypatch):
    monkeypatch.setenv("BMTPT_TASKS", "demo_rte")  # set for adapt; evaluate without --shots must not refuse it
    assert resolve_settings("evaluate", None, {}).tasks == ["demo_rte"]


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float
    steps: int


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner
    tasks: list[str]
    extra: int


def test_build_fills_nested_configs_by_name_and_refuses_unknown_fields():
    settings = resolve_settings("source", None, {"lr": 0.2})
    built = build(Outer, settings, extra=3, steps=9)
    assert built == Outer(Inner(0.2, 9), settings.tasks, 3)
    with pytest.raises(TypeError, match="extra"):
        build(Outer, settings)
