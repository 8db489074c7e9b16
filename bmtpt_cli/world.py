"""A run's world: the model and the input format a prompt lives in (issue 26).

- The `demo` preset is the toy world's (the shipped toy T5 on the toy-world tasks). A run that leaves
  that world (another model by flag or BMTPT_*, a real task, an artifact made with another model)
  takes the built-in defaults instead, and `--print-config` says why (`demo_exit`).
- An artifact records its world: `bmtpt.model`, `bmtpt.prompt_length` and, in `bmtpt.config`, the
  input format (taskless, label style, maximum lengths). A command that reads one takes those values
  (origin "from FILE") unless the user set them by flag or BMTPT_*; then it says what differs in one
  warning line, or refuses where the result would be meaningless (`adopt_artifact_world`).

Artifacts are read here only as far as their metadata (the safetensors header, no tensors); an
unreadable file is left to the command's own loader, which says what is wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bmtpt_cli.errors import BmtptError

DEMO_PRESET = "demo"
DEMO_MODEL = "toy"
BUILT_IN_MODELS = ("toy", "toy-wide", "toy3", "tiny")
"""Models bmtpt ships: each is its own world (tokenizer and width), never the same as another name."""

WORLD_KEYS = ("model", "prompt_length", "taskless", "label_style", "max_source_length", "max_target_length")
"""The settings that define a prompt's world: the model, the prompt length and the tokenizer-dependent input format."""

FORMAT_KEYS = {"taskless": bool, "label_style": str, "max_source_length": int, "max_target_length": int}
"""The input-format keys read from an artifact's `bmtpt.config`, with their types."""

TRAINING_FROM_ARTIFACT = ("adapt", "fewshot", "project")
"""Commands that train from an artifact (adapt, the few-shot grid, a projector): another input format is a choice, warned about."""

TO_ANOTHER_MODEL = ("project",)
"""Commands whose --model is another model than their artifact's (`project`'s target): the artifact's model is not taken."""

MAX_HEADER_BYTES = 10 << 20


# --------------------------------------------------------------------------------- reading an artifact's world
def read_metadata(path: Path) -> dict[str, str] | None:
    """The `__metadata__` of a safetensors file's header, or None when it is not one (or unreadable)."""
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= MAX_HEADER_BYTES:
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError, RecursionError):  # a header nested too deep for the parser: not an artifact here
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or "bmtpt.kind" not in metadata:
        return None
    return {str(k): v for k, v in metadata.items() if isinstance(v, str)}


def artifact_world(path: Path) -> dict[str, Any] | None:
    """The world an artifact was made in (the keys it records), and its tasks under `tasks`; None if not an artifact."""
    metadata = read_metadata(path)
    if metadata is None:
        return None
    world: dict[str, Any] = {}
    if metadata.get("bmtpt.model"):
        world["model"] = metadata["bmtpt.model"]
    try:
        world["prompt_length"] = int(metadata.get("bmtpt.prompt_length", ""))
    except ValueError:
        pass  # malformed: the loader's check refuses it with its own message
    try:  # read within bounds: a crafted config cannot exhaust the parser
        from bmtpt_cli.artifacts.native import metadata_json

        config = metadata_json(metadata, "bmtpt.config", path)
    except BmtptError:
        config = {}  # malformed: the loader's check refuses it with its own message
    if isinstance(config, dict):
        for key, kind in FORMAT_KEYS.items():
            value = config.get(key)
            if isinstance(value, kind) and (kind is not int or not isinstance(value, bool)):
                world[key] = value
    world["tasks"] = [t for t in metadata.get("bmtpt.tasks", "").split(",") if t]
    return world


def artifacts_read(command: str, settings: Any) -> list[Path]:
    """The existing artifact files `command` will read with these settings (their world applies), in order."""
    def is_file(value: Any) -> bool:
        return value is not None and str(value) not in ("random", "") and not str(value).startswith("retrieve:") and Path(value).is_file()

    candidates: list[Any] = []
    if command == "adapt" or (command == "evaluate" and getattr(settings, "shots", None)):
        candidates.append(settings.init)
    elif command in ("evaluate", "export"):
        candidates.append(settings.prompts)
    elif command == "fewshot":
        methods = list(settings.methods)
        if any(m in ("bmtpt", "bmtpt-noprior") or m.startswith("particle-") for m in methods):
            candidates.extend(settings.particles)
        if "multitask" in methods:
            candidates.extend(settings.multitask)
    elif command == "transfer-matrix" and Path(settings.prompts_dir).is_dir():
        candidates.extend(sorted(Path(settings.prompts_dir).glob("*.safetensors"))[:1])
    elif command == "project":
        prompts = Path(settings.prompts)
        candidates.extend(sorted(prompts.glob("*.safetensors"))[:1] if prompts.is_dir() else [prompts])
    return [Path(value) for value in candidates if is_file(value)]


# --------------------------------------------------------------------------------- the demo preset's world
def demo_exit(command: str, settings: Any) -> str | None:
    """Why a run resolved with the demo preset leaves the demo's toy world (None: it stays in it).

    Another model given by flag or BMTPT_*, a task outside the generated families (demo, toyworld)
    given by flag or BMTPT_*, or an artifact made with another model or holding such tasks.
    """
    from bmtpt_cli.data.registry import GENERATED_BENCHMARKS, TASKS

    def real(names: list[str]) -> list[str]:
        return [n for n in names if n.lower() in TASKS and TASKS[n.lower()].benchmark not in GENERATED_BENCHMARKS]

    if "model" in settings._explicit and settings.model != DEMO_MODEL:
        return f"{given(settings, 'model')}"
    for key in ("tasks", "sources"):
        names = getattr(settings, key, None) if key in settings._explicit else None
        if names and real(list(names)):
            return given(settings, key)
    for path in artifacts_read(command, settings):
        world = artifact_world(path) or {}
        if world.get("model", DEMO_MODEL) != DEMO_MODEL:
            return f"{path} was made with {world['model']}"
        tasks = real(world.get("tasks", []))
        if tasks:
            return f"{path} holds {', '.join(tasks)}"
    return None


# --------------------------------------------------------------------------------- an artifact's world
def adopt_artifact_world(command: str, settings: Any) -> None:
    """Take the world of the artifacts the run reads, for every key the user did not set (flag or BMTPT_*).

    A key the user set that differs is refused where the result would be meaningless (another
    built-in model, another prompt length; evaluate: another label style) and otherwise warned about
    in one line (`settings.notes`). Two artifacts of one run made in different worlds are refused.
    `export` only takes the values: its --model names the base model to record (checked by export).
    """
    paths = artifacts_read(command, settings)
    worlds = [(path, artifact_world(path)) for path in paths]
    worlds = [(path, world) for path, world in worlds if world is not None]
    if not worlds:
        return
    (path, world), others = worlds[0], worlds[1:]
    for other, theirs in others:
        differ = [k for k in WORLD_KEYS if k in world and k in theirs and world[k] != theirs[k]]
        if differ:
            key = differ[0]
            raise BmtptError(
                f"'{path}' and '{other}' were made in different worlds ({key} = {_toml(world[key])} and "
                f"{_toml(theirs[key])}): pass artifacts made with the same model and settings"
            )
    fields = type(settings).model_fields
    for key in WORLD_KEYS:
        if key not in world or key not in fields or (key == "model" and command in TO_ANOTHER_MODEL):
            continue
        value = world[key]
        if key != "model":  # the model name is checked where it is taken (below)
            _check_recorded(path, key, value, fields[key])
        if key not in settings._explicit:
            if key == "model":  # a file names a model to load only as tiny, toy or a hub id, never as a path
                from bmtpt_cli.runner.model import check_recorded_model

                check_recorded_model(value, path)
            setattr(settings, key, value)
            settings._origins[key] = f"from {path}"
        elif getattr(settings, key) != value and command != "export":
            _differs(command, settings, key, value, path)


def _check_recorded(path: Path, key: str, value: Any, field: Any) -> None:
    """Refuse a recorded value its setting would not accept (a crafted or damaged file): the setting's own bounds."""
    from typing import Annotated

    from pydantic import TypeAdapter, ValidationError

    from bmtpt_cli.errors import excerpt

    try:
        kind = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        TypeAdapter(kind).validate_python(value, strict=True)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise BmtptError(
            f"'{path}' records {key} = {excerpt(value)}, which no run accepts ({reason}): re-create it with bmtpt"
        ) from None


def _differs(command: str, settings: Any, key: str, recorded: Any, path: Path) -> None:
    """One user-set world key that differs from the artifact's: refuse, or add a one-line warning."""
    asked = given(settings, key)
    if key == "model":
        if recorded in BUILT_IN_MODELS or settings.model in BUILT_IN_MODELS:
            other = "--init random or an init file" if command == "adapt" else "an artifact"
            raise BmtptError(
                f"'{path}' was made with model {recorded}, the run asks for {asked}: a prompt does not carry over "
                f"to another model; drop {flag_name(key)} or pass {other} made with {settings.model}"
            )
        settings._notes.append(
            f"warning: '{path}' was made with model {recorded}, the run uses {asked} (the same model under "
            "another name? its width must match)"
        )
        return
    if key == "prompt_length":
        raise BmtptError(
            f"'{path}' holds prompts of length {recorded}, the run asks for {flag_name(key)} {settings.prompt_length}: "
            f"drop {flag_name(key)} or pass {recorded}"
        )
    scoring = command not in TRAINING_FROM_ARTIFACT and not (command == "evaluate" and getattr(settings, "shots", None))
    if key == "label_style" and scoring:
        raise BmtptError(
            f"'{path}' was trained with label_style = {_toml(recorded)}, the run asks for {asked}: its prompts would "
            f"score other label words than they learned; drop {flag_name(key)} or train prompts with it"
        )
    effect = "its prompts are scored on inputs formatted otherwise" if scoring else "the run adapts it to this format"
    settings._notes.append(f"warning: {asked}, but '{path}' was made with {key} = {_toml(recorded)}: {effect}")


def given(settings: Any, key: str) -> str:
    """How the user set a key, as they typed it: `--model t5-base`, `--no-taskless`, `BMTPT_TASKLESS=false`."""
    value = getattr(settings, key)
    origin = settings.origin(key)
    if origin.startswith("BMTPT_"):
        return f"{origin}={_plain(value)}"
    if isinstance(value, bool):
        return flag_name(key) if value else f"--no-{flag_name(key)[2:]}"
    return f"{flag_name(key)} {_plain(value)}"


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else str(value)


def flag_name(name: str) -> str:
    """A setting's command-line flag: `lr_shared` → `--lr-shared`."""
    return f"--{name.replace('_', '-')}"
