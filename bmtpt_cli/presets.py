"""Presets: TOML files of settings. A name resolves to `presets/<name>.toml`, anything else is a path.

A preset holds top-level keys shared by every command (model, prompt_length, seed, …) and one table
per command (`[source]`, `[adapt]`, `[evaluate]`) with that command's keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bmtpt_cli.errors import BmtptError

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
DEFAULT_PRESET = "demo"
PRESET_VARIABLE = "BMTPT_PRESET"  # names the preset used when --preset is not given
COMMAND_TABLES = ("source", "adapt", "evaluate", "transfer-matrix", "export", "fewshot", "project")


def available_presets() -> list[str]:
    """Names of the presets shipped in `presets/`."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def preset_path(preset: str | None) -> Path:
    """The file a `--preset` value names: a shipped preset's name, or a path to a TOML file.

    Without one, `$BMTPT_PRESET` if set, else `demo`.
    """
    preset = preset or os.environ.get(PRESET_VARIABLE) or DEFAULT_PRESET
    shipped = PRESETS_DIR / f"{preset}.toml"
    if "/" not in preset and not preset.endswith(".toml") and shipped.is_file():
        return shipped
    path = Path(preset)
    if not path.is_file():
        raise BmtptError(
            f"unknown preset '{preset}': use one of {', '.join(available_presets())} or a path to a .toml file"
        )
    return path


def read_preset(path: Path) -> dict[str, Any]:
    """Parse a preset file; a syntax error is reported with its line, an unknown table by name."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BmtptError(f"preset '{path}' does not parse: {exc} — fix the TOML syntax") from exc
    except UnicodeDecodeError:
        raise BmtptError(f"preset '{path}' is not a TOML text file (not UTF-8 text): pass a .toml preset or a shipped preset's name") from None
    for key, value in data.items():
        if isinstance(value, dict) and key not in COMMAND_TABLES:
            raise BmtptError(
                f"preset '{path}' has an unknown table [{key}]: use [{'], ['.join(COMMAND_TABLES)}]"
            )
    return data


def preset_values(data: dict[str, Any], command: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The values a command takes from a preset (its table over the shared top-level keys).

    Also returns where each came from (`key` or `[command].key`), for error messages.
    """
    shared = {k: v for k, v in data.items() if not isinstance(v, dict)}
    table = data.get(command, {})
    origin = {k: k for k in shared} | {k: f"[{command}].{k}" for k in table}
    return shared | table, origin
