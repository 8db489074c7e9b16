"""Which runs of a plan are finished, and with which settings: one small JSON file per run under
`<out>/state/`, so runs started on different machines over a shared folder never write the same file.

A finished run with the same fingerprint is skipped; one with another fingerprint refuses the whole plan
(its results would mix two settings in one table); a run with output but no record restarts (`restart_flags`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.reproduce.plan import NOT_FINGERPRINTED, Plan, Run
from bmtpt_cli.runtime.files import write_text_atomic
from bmtpt_cli.runtime.outputs import sidecar

STATE_DIR = "state"


def state_path(root: Path, run: Run) -> Path:
    """The record of a run: `<root>/state/<its name, / as __>.json`."""
    return root / STATE_DIR / (run.name.replace("/", "__") + ".json")


def read_state(root: Path, run: Run) -> dict | None:
    path = state_path(root, run)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # an unreadable record: the run is redone


def is_finished(root: Path, run: Run) -> bool:
    """Finished with the plan's settings, and its output still there."""
    record = read_state(root, run)
    return bool(record and record.get("fingerprint") == run.fingerprint() and (root / run.produces).exists())


def mark_finished(root: Path, run: Run, seconds: float) -> None:
    record = {"name": run.name, "fingerprint": run.fingerprint(), "argv": run.argv(root), "preset": run.preset,
              "preset_values": json.loads(json.dumps(run.preset_values(), default=str)),
              "flags": json.loads(json.dumps(run.flags, default=str)), "seconds": round(seconds, 3),
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = state_path(root, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")


def check_no_mixing(root: Path, plan: Plan) -> None:
    """Refuse a plan whose finished runs in `root` were made with other settings (one line, naming the
    first such run and how to go on)."""
    for run in plan.runs:
        record = read_state(root, run)
        if record and record.get("fingerprint") != run.fingerprint():
            raise BmtptError(
                f"'{root}' holds run {run.name} made with other settings ({changes(record, run)}): a table would mix "
                "them; use another --out, or rerun with the settings it was made with"
            )


def changes(record: dict, run: Run) -> str:
    """`steps 10 → 11, seeds 2 → 3`: how a recorded run's settings differ from the plan's run."""
    was = {"preset": record.get("preset")} | (record.get("flags") or {})
    now = {"preset": run.preset} | json.loads(json.dumps(run.flags, default=str))
    keys = [k for k in dict.fromkeys([*was, *now]) if k not in NOT_FINGERPRINTED and was.get(k) != now.get(k)]
    shown = [f"{k} {_shown(was.get(k))} → {_shown(now.get(k))}" for k in keys]
    was_preset = record.get("preset_values") or {}
    now_preset = json.loads(json.dumps(run.preset_values(), default=str))
    shown += [f"preset {run.preset} key {k} {_shown(was_preset.get(k))} → {_shown(now_preset.get(k))}"
              for k in dict.fromkeys([*was_preset, *now_preset]) if was_preset.get(k) != now_preset.get(k)]
    return ", ".join(shown) or "its record differs"


def _shown(value) -> str:
    if value is None:
        return "unset"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def restart_flags(root: Path, run: Run) -> dict:
    """How a run not recorded as finished starts again: from its checkpoint (`--resume`) where one was left,
    over a partial output (`--force`) otherwise, plainly where nothing is there."""
    out = root / run.produces
    if run.command in ("source", "adapt"):
        if run.flags.get("per_task"):
            return {"resume": True} if out.is_dir() else {}
        if sidecar(out, ".ckpt").is_file():
            return {"resume": True}
        return {"force": True} if out.exists() or sidecar(out, ".log.jsonl").exists() else {}
    if run.command == "fewshot":
        if (out / "results.jsonl").is_file():
            return {"resume": True}
        return {"force": True} if out.exists() else {}
    return {"force": True} if out.exists() else {}
