"""Settings and presets: precedence, preset lookup, shipped presets, error messages, validation."""

from __future__ import annotations

import json
import re

import pytest

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.presets import PRESETS_DIR, available_presets, preset_path
from bmtpt_cli.settings import (
    SETTINGS_BY_COMMAND,
    AdaptSettings,
    CommonSettings,
    EvaluateSettings,
    SourceSettings,
    help_for,
    resolve_settings,
)

SHIPPED = sorted(PRESETS_DIR.glob("*.toml"))
COMMANDS = ("source", "adapt", "evaluate")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """No BMTPT_* variable of the developer's shell may leak into these tests (but conftest's BMTPT_PRESET=tiny)."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("BMTPT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BMTPT_PRESET", "tiny")


@pytest.fixture
def preset(tmp_path):
    """Write a preset into tmp_path and return its path as a string (as `--preset` passes it)."""

    def write(text: str, name: str = "mine.toml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def _one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    return message


# --------------------------------------------------------------------------------- precedence
LAYERED = """
model = "preset-model"
[source]
steps = 11
lr = 0.5
particles = 2
"""


def test_preset_beats_defaults_and_absent_keys_take_the_default(preset):
    settings = resolve_settings("source", preset(LAYERED), {})
    assert isinstance(settings, SourceSettings)
    assert settings.steps == 11
    assert settings.lr == 0.5
    assert settings.model == "preset-model"  # a top-level key reaches the command
    # absent from flags, environment and preset: the class defaults
    assert settings.weight_decay == SourceSettings.model_fields["weight_decay"].default == 0.0  # particles: no decay (issue 9)
    assert settings.examples_per_task == 1
    assert settings.prompt_length == 100
    assert settings.damping is None


def test_environment_beats_preset(preset, monkeypatch):
    monkeypatch.setenv("BMTPT_STEPS", "22")
    monkeypatch.setenv("BMTPT_EXAMPLES_PER_TASK", "3")  # environment over a default
    settings = resolve_settings("source", preset(LAYERED), {})
    assert settings.steps == 22
    assert settings.examples_per_task == 3
    assert settings.lr == 0.5  # still the preset's where the environment says nothing


def test_flags_beat_environment_and_preset(preset, monkeypatch):
    monkeypatch.setenv("BMTPT_STEPS", "22")
    monkeypatch.setenv("BMTPT_MODEL", "env-model")
    settings = resolve_settings("source", preset(LAYERED), {"steps": 33, "lr": 0.7})
    assert settings.steps == 33  # flag > environment > preset
    assert settings.lr == 0.7  # flag > preset
    assert settings.model == "env-model"  # environment > preset's top-level key
    assert settings.particles == 2  # preset where neither flag nor environment speaks


def test_command_table_only_reaches_its_command(preset):
    text = LAYERED + "\n[adapt]\nprompt_length = 20\n"
    source = resolve_settings("source", preset(text), {})
    adapt = resolve_settings("adapt", preset(text), {})
    evaluate = resolve_settings("evaluate", preset(text), {})
    assert adapt.steps == AdaptSettings.model_fields["steps"].default == 30_000  # [source].steps does not leak
    assert evaluate.steps == EvaluateSettings.model_fields["steps"].default == 1000
    assert adapt.model == evaluate.model == "preset-model"
    assert adapt.prompt_length == 20  # [adapt] over nothing
    assert source.prompt_length == 100


def test_command_table_beats_top_level_key(preset):
    text = 'prompt_length = 8\n[adapt]\nprompt_length = 20\n'
    assert resolve_settings("adapt", preset(text), {}).prompt_length == 20
    assert resolve_settings("source", preset(text), {}).prompt_length == 8


# --------------------------------------------------------------------------------- preset lookup
def test_preset_name_resolves_to_the_shipped_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "glue6").write_text("not toml [[[")  # a file named like a preset in the cwd does not shadow it
    assert preset_path("glue6") == PRESETS_DIR / "glue6.toml"
    assert resolve_settings("source", "glue6", {}).model == "t5-base"


def test_preset_path_is_read_as_a_file(preset):
    path = preset('model = "from-a-path"\n', name="custom.toml")
    assert str(preset_path(path)) == path
    assert resolve_settings("evaluate", path, {}).model == "from-a-path"


def test_no_preset_means_demo_on_the_toy_world(monkeypatch):
    monkeypatch.delenv("BMTPT_PRESET")  # conftest makes the tests' default `tiny`
    assert preset_path(None) == PRESETS_DIR / "demo.toml"
    settings = resolve_settings("source", None, {})
    assert settings.model == "toy" and settings.device == "cpu"
    assert settings.tasks and all(task.startswith("toy_") for task in settings.tasks)
    assert all(task.startswith("toy_") for task in resolve_settings("adapt", None, {}).tasks)


def test_bmtpt_preset_names_the_default_preset(monkeypatch):
    assert preset_path(None) == PRESETS_DIR / "tiny.toml"  # conftest sets BMTPT_PRESET=tiny
    monkeypatch.setenv("BMTPT_PRESET", "glue6")
    assert preset_path(None) == PRESETS_DIR / "glue6.toml" and preset_path("demo") == PRESETS_DIR / "demo.toml"
    monkeypatch.setenv("BMTPT_PRESET", "tiny")
    settings = resolve_settings("source", None, {})
    assert settings.model == "tiny" and settings.steps == 40


def test_unknown_preset_lists_the_available_ones():
    assert {"demo", "glue6", "tiny", "toyworld"} <= set(available_presets())
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", "no-such-preset", {})
    message = _one_line(excinfo)
    assert "no-such-preset" in message
    for name in available_presets():
        assert name in message


# --------------------------------------------------------------------------------- shipped presets
def _class_for_table(table: str | None) -> type:
    return CommonSettings if table is None else SETTINGS_BY_COMMAND[table]


def _keys_with_preceding_line(text: str) -> list[tuple[str | None, str, str]]:
    """(table, key, the line just above it) for every `key = value` line of a TOML file."""
    found, table, previous = [], None, ""
    for line in text.splitlines():
        stripped = line.strip()
        header = re.fullmatch(r"\[([A-Za-z_]+)\]", stripped)
        if header:
            table = header.group(1)
        else:
            assignment = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", stripped)
            if assignment:
                found.append((table, assignment.group(1), previous))
        previous = stripped
    return found


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_preset_resolves(path, command):
    settings = resolve_settings(command, path.stem, {})
    assert isinstance(settings, SETTINGS_BY_COMMAND[command])
    json.dumps(settings.model_dump(mode="json"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_preset_key_is_commented_with_its_help(path):
    keys = _keys_with_preceding_line(path.read_text(encoding="utf-8"))
    assert keys, f"{path.name}: no keys parsed"
    problems = []
    for table, key, above in keys:
        cls = _class_for_table(table)
        assert key in cls.model_fields, f"{path.name}: [{table}] {key} is not a field of {cls.__name__}"
        expected = f"# {help_for(cls, key)}"
        if not help_for(cls, key) or above != expected:
            problems.append(f"[{table or 'top'}] {key}: above it {above!r}, expected {expected!r}")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_presets_parse_into_many_keys_and_hold_only_what_differs_from_the_defaults():
    """Presets are short by design: every key either changes a default or names the preset's tasks."""
    total = 0
    for path in SHIPPED:
        keys = _keys_with_preceding_line(path.read_text(encoding="utf-8"))
        total += len(keys)
        for table, key, _ in keys:
            cls = _class_for_table(table)
            value = resolve_settings(table or "source", path.stem, {}).model_dump(mode="json")[key]
            default = cls.model_fields[key].default
            default = [str(v) for v in default] if key == "tasks" else default
            assert key == "tasks" or value != default, f"{path.name}: [{table}] {key} repeats the default {default!r}"
    assert total >= 10, "suspiciously few keys parsed over all presets"


def test_refreshing_the_comments_changes_no_shipped_preset():
    import importlib.util

    script = PRESETS_DIR.parent / "scripts" / "refresh_preset_comments.py"
    spec = importlib.util.spec_from_file_location("refresh_preset_comments", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in SHIPPED:
        assert module.refreshed(path.read_text(encoding="utf-8")) == path.read_text(encoding="utf-8"), path.name
    stale = 'x = 1\n# Old words.\nmodel = "t5-small"\n'.replace("x = 1\n", "")
    assert module.refreshed(stale) == f'# {help_for(CommonSettings, "model")}\nmodel = "t5-small"\n'


def test_comment_check_notices_a_wrong_comment():
    """The line parser used above does catch a key whose comment is missing or stale."""
    keys = _keys_with_preceding_line('# Wrong words.\nmodel = "x"\n[source]\nsteps = 3\n')
    assert keys == [(None, "model", "# Wrong words."), ("source", "steps", "[source]")]
    assert keys[0][2] != f"# {help_for(CommonSettings, 'model')}"


def test_shipped_presets_hold_the_values_they_promise():
    glue6 = resolve_settings("source", "glue6", {})
    assert glue6.particles == 5 and glue6.steps == 100_000 and glue6.prompt_length == 100
    assert glue6.tasks == ["mnli", "qnli", "qqp", "sst2", "squad", "record"]
    adapt = resolve_settings("adapt", "glue6", {})
    assert adapt.sigma == 1e5 and adapt.lr_shared == 0.3 and adapt.lr_scales == 0.4


# --------------------------------------------------------------------------------- bad presets
def test_preset_syntax_error(preset):
    path = preset('model = \n[source\n')
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", path, {})
    message = _one_line(excinfo)
    assert "does not parse" in message and path in message


def test_preset_unknown_top_level_key(preset):
    path = preset('modle = "t5-base"\n')
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("adapt", path, {})
    assert "'modle'" in _one_line(excinfo)


def test_preset_command_key_at_top_level_is_refused(preset):
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", preset("steps = 5\n"), {})
    message = _one_line(excinfo)
    assert "steps" in message and "[source]" in message


def test_preset_unknown_key_in_a_table(preset):
    path = preset("[source]\nparticels = 3\n")
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", path, {})
    assert "particels" in _one_line(excinfo)
    # checked whichever command runs: a typo in [source] is reported by `bmtpt adapt` too
    with pytest.raises(BmtptError):
        resolve_settings("adapt", path, {})


def test_preset_unknown_table(preset):
    path = preset("[sources]\nsteps = 3\n")
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", path, {})
    assert "[sources]" in _one_line(excinfo)


def test_preset_wrong_type(preset):
    path = preset('[source]\nparticles = "many"\n')
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", path, {})
    message = _one_line(excinfo)
    assert "particles" in message and "preset" in message and path in message
    assert "many" in message


def test_environment_wrong_type_names_the_variable(monkeypatch):
    monkeypatch.setenv("BMTPT_PARTICLES", "many")
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", None, {})
    assert "BMTPT_PARTICLES" in _one_line(excinfo)


def test_unknown_flag_is_refused():
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("source", None, {"sigma": 3.0})  # an adapt setting given to source
    assert "--sigma" in _one_line(excinfo)


# --------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("command", "key", "value"),
    [
        ("source", "particles", 0),
        ("source", "steps", -1),
        ("source", "lr", 0),
        ("adapt", "sigma", 0),
        ("source", "damping", 1.5),
        ("source", "damping", 0),
        ("adapt", "steps", 0),
        ("evaluate", "shots", 0),
        ("source", "prompt_length", 0),
        ("evaluate", "decode", "beam"),
    ],
)
def test_out_of_range_flag_is_refused_naming_the_flag(command, key, value):
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings(command, None, {key: value})
    message = _one_line(excinfo)
    assert f"--{key.replace('_', '-')}" in message


def test_boundary_values_are_accepted():
    settings = resolve_settings("source", None, {"damping": 1.0, "particles": 1})
    assert settings.damping == 1.0 and settings.particles == 1


# --------------------------------------------------------------------------------- lists
@pytest.mark.parametrize("command", COMMANDS)
def test_tasks_from_a_comma_separated_flag(command):
    probe = {"shots": 4} if command == "evaluate" else {}  # evaluate takes --tasks only for the few-shot probe
    assert resolve_settings(command, None, {"tasks": "rte, cb,,boolq ", **probe}).tasks == ["rte", "cb", "boolq"]


@pytest.mark.parametrize("command", COMMANDS)
def test_tasks_from_the_environment(command, monkeypatch):
    monkeypatch.setenv("BMTPT_TASKS", "a, b")
    assert resolve_settings(command, None, {}).tasks == ["a", "b"]


def test_tasks_and_seeds_from_a_toml_list(preset):
    path = preset('[source]\ntasks = ["x", "y"]\n[evaluate]\ntasks = ["z"]\nseeds = [7, 8]\n')
    assert resolve_settings("source", path, {}).tasks == ["x", "y"]
    evaluate = resolve_settings("evaluate", path, {})
    assert evaluate.tasks == ["z"] and evaluate.seeds == [7, 8]


def test_seeds_from_a_flag_and_from_the_environment(monkeypatch):
    assert resolve_settings("evaluate", None, {"seeds": "3, 4", "shots": 4}).seeds == [3, 4]
    monkeypatch.setenv("BMTPT_SEEDS", "5,6,7")
    assert resolve_settings("evaluate", None, {}).seeds == [5, 6, 7]


def test_seeds_that_are_not_numbers_are_refused():
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("evaluate", None, {"seeds": "1,two"})
    assert "--seeds" in _one_line(excinfo)


def test_empty_task_list_is_refused():
    with pytest.raises(BmtptError) as excinfo:
        resolve_settings("adapt", None, {"tasks": " , "})
    assert "--tasks" in _one_line(excinfo)


# --------------------------------------------------------------------------------- serialisation
@pytest.mark.parametrize("command", COMMANDS)
def test_resolved_settings_serialise_to_json(command, preset):
    settings = resolve_settings(command, preset('device = "cpu"\n'), {"out": "runs/out.file"})
    dumped = settings.model_dump(mode="json")
    restored = json.loads(json.dumps(dumped))
    assert restored == dumped
    assert restored["out"] == "runs/out.file"
    assert restored["device"] == "cpu"
    assert set(restored) == set(SETTINGS_BY_COMMAND[command].model_fields)
