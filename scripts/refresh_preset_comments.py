"""Rewrites the comment above every key of presets/*.toml to that setting's current description.

Presets are written by hand and hold only what differs from the defaults; this script never
touches a value, a header comment or the order of keys. Run it after changing a field's
description (tests/test_settings.py checks every key's comment): `.venv/bin/python scripts/refresh_preset_comments.py`.
"""

from __future__ import annotations

import re

from bmtpt_cli.presets import PRESETS_DIR
from bmtpt_cli.settings import SETTINGS_BY_COMMAND, CommonSettings


def refreshed(text: str) -> str:
    """The preset text with each `key = value` line preceded by exactly one `# <description>` line."""
    lines, table = [], None
    for line in text.splitlines():
        header = re.fullmatch(r"\[([A-Za-z_]+)\]", line.strip())
        assignment = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", line.strip())
        if header:
            table = header.group(1)
        elif assignment:
            fields = (SETTINGS_BY_COMMAND[table] if table else CommonSettings).model_fields
            if lines and lines[-1].startswith("# ") and not lines[-1].startswith("# ---"):
                lines.pop()  # the key's old comment
            lines.append(f"# {fields[assignment.group(1)].description}")
        lines.append(line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for path in sorted(PRESETS_DIR.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        new = refreshed(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"refreshed {path.name}")
