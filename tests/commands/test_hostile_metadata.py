"""Crafted artifact metadata (issue 27): JSON too deep or too large, markup in the card, a model path.

Each one gives one line and exit code 2 (or, where the export can go on, a card with the value escaped),
no traceback, and nothing written: metadata never breaks the model card's structure, and a model that
is not a model name (tiny, toy, a hub id) is loaded only when the user passes it with --model.
"""

from __future__ import annotations

import json
import re
import tomllib

import pytest
import torch
from safetensors.torch import save_file

from bmtpt_cli.artifacts import PROMPTS, common_metadata, save_prompts
from bmtpt_cli.settings import defaults
from clihelpers import bmtpt, one_line_error, snapshot

TASKS = ("demo_review", "demo_rte")
CONFIG = defaults("adapt").model_dump(mode="json") | {"init": "random", "model": "tiny", "steps": 4, "tasks": list(TASKS)}
DEEP = "[" * 200000


def _metadata(**fields: str) -> dict[str, str]:
    """A prompts file's metadata as bmtpt adapt writes it, with `fields` ('bmtpt_x' for 'bmtpt.x') replaced."""
    metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=64, prompt_length=8, config=CONFIG) | {
        "bmtpt.init": "random",
        "bmtpt.init_sha256": "",
        "bmtpt.dev_metrics": json.dumps({task: 0.5 for task in TASKS}),
        "bmtpt.dev_metric_names": json.dumps({task: "accuracy" for task in TASKS}),
        "bmtpt.best_step": "4",
        "bmtpt.prior": "none: the init has no source posterior (vanilla prompt tuning)",
        "bmtpt.data": json.dumps({"taskless": False, "label_style": "words"}),
        "bmtpt.provenance": json.dumps({"created": "2026-12-06T00:00:00+00:00", "device": "cpu", "versions": {"torch": "2"}}),
    }
    return metadata | {key.replace("_", ".", 1): value for key, value in fields.items()}


def _prompts(path, **fields: str) -> None:
    g = torch.Generator().manual_seed(0)
    scales = {task: (torch.randn(8, generator=g), torch.randn(64, generator=g)) for task in TASKS}
    save_prompts(path, torch.randn(8, 64, generator=g), scales, metadata=_metadata(**fields))


# --------------------------------------------------------------------------------- export: hostile metadata
HUGE = json.dumps({"x": "y" * (2 << 20)})  # valid JSON of 2 MiB


@pytest.mark.parametrize("value", [DEEP, HUGE], ids=["nested 200000 deep", "2 MiB"])
@pytest.mark.parametrize("key", ["bmtpt_config", "bmtpt_data", "bmtpt_dev_metrics", "bmtpt_dev_metric_names", "bmtpt_provenance"])
def test_export_refuses_json_metadata_too_deep_or_too_large_in_one_line(key, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _prompts(tmp_path / "prompts.safetensors", **{key: value})
    before = snapshot(tmp_path)
    message = one_line_error(bmtpt("export", "--prompts", "prompts.safetensors", "--out", "exp"))
    assert key.replace("_", ".", 1) in message and "prompts.safetensors" in message and len(message) < 400, message
    assert snapshot(tmp_path) == before


def _crafted(path, tasks: str, tensor_names: list[str]) -> None:
    """A prompts file whose task list and tensor names are chosen by the caller (as no bmtpt writes them)."""
    tensors = {"shared": torch.randn(8, 64)} | {name: torch.ones(8 if name.endswith(".a") else 64) for name in tensor_names}
    save_file(tensors, str(path), metadata=_metadata() | {"bmtpt.tasks": tasks})


@pytest.mark.parametrize("task", [DEEP, "x" * 100000, "demo\n```python\nimport os\n", "demo\x1b[2J"], ids=["deep", "huge", "fence", "escape"])
def test_export_refuses_a_crafted_task_name_in_one_short_line(task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _crafted(tmp_path / "prompts.safetensors", task, [f"tasks.{task}.a", f"tasks.{task}.b"])
    before = snapshot(tmp_path)
    message = one_line_error(bmtpt("export", "--prompts", "prompts.safetensors", "--out", "exp"))
    assert len(message) < 400 and "\x1b" not in message and "prompts.safetensors" in message, message
    assert snapshot(tmp_path) == before


INJECTED = "\n```\n# injected heading\n```python\nimport os; os.system('echo pwned')\n"
HOSTILE = dict(
    bmtpt_init="p.safetensors`" + INJECTED,
    bmtpt_init_sha256="abc`|" + INJECTED,
    bmtpt_prior="<script>alert(1)</script>\n## injected prior\n| a | b |",
    bmtpt_version="1|2\n---\n# injected version",
    bmtpt_best_step="4\n# injected step",
    bmtpt_prompt_length="8 |\n# injected length",
    bmtpt_dev_metric_names=json.dumps({"demo_review": "acc | evil\n# injected metric", "demo_rte": ["not", "text"]}),
    bmtpt_provenance=json.dumps({"created": "\x1b[31mred", "device": "```", "git": "a\n# injected git",
                                 "versions": {"x\n# injected version": "1`"}}),
    bmtpt_config=json.dumps(CONFIG | {"init": 'p.safetensors"\n[source]\nforce = true\n```\n# injected preset',
                                      "out": "t.safetensors\x7f"}),
)


def _structure(card: str) -> list[str]:
    """The lines that shape a card: headings, fences, front matter and table separators."""
    return [line for line in card.splitlines() if line.startswith(("#", "```", "---", "|---"))]


def _block(card: str, language: str) -> str:
    """The text of the card's one fenced block in `language`, up to the line that closes it (as markdown reads it)."""
    lines = card.splitlines()
    (start,) = [i for i, line in enumerate(lines) if re.fullmatch(r"`{3,}" + language, line)]
    fence = lines[start][: -len(language)]
    end = next(i for i in range(start + 1, len(lines)) if re.fullmatch(r" {0,3}`{%d,} *" % len(fence), lines[i]))
    return "\n".join(lines[start + 1 : end])


def _cells(card: str) -> list[int]:
    """How many cells each table row of a card has (a `\\|` inside a cell does not split it)."""
    return [len(re.findall(r"(?<!\\)\|", line)) for line in card.splitlines() if line.startswith("|")]


def test_export_escapes_hostile_metadata_in_the_model_card(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _prompts(tmp_path / "clean.safetensors")
    _prompts(tmp_path / "hostile.safetensors", **HOSTILE)
    for name in ("clean", "hostile"):
        result = bmtpt("export", "--prompts", f"{name}.safetensors", "--format", "safetensors", "--out", name)
        assert result.exit_code == 0, result.output
    clean, card = ((tmp_path / name / "README.md").read_text(encoding="utf-8") for name in ("clean", "hostile"))
    assert _structure(card) == _structure(clean)
    assert "injected" in card  # shown, but escaped: never a heading, a fence or a table row of its own
    for line in card.splitlines():
        assert "injected" not in line or not line.lstrip().startswith(("#", "```", "import", "---")), line
    assert _cells(card) == _cells(clean)  # every table row keeps its cells
    assert "<script>" not in card and "\x1b" not in card and "\x7f" not in card
    preset = _block(card, "toml")
    recorded = json.loads(HOSTILE["bmtpt_config"])
    from bmtpt_cli.export import card as card_module

    skipped = getattr(card_module, "COMMAND_LINE_ONLY", ())  # settings a preset never carries (--force)
    assert tomllib.loads(preset) == {"adapt": {k: v for k, v in recorded.items() if v is not None and k not in skipped}}
    code = _block(card, "python")
    compile(code, "README.md", "exec")  # the snippet stays one valid program


def test_settings_no_preset_can_hold_are_shown_escaped_instead(tmp_path, monkeypatch):
    """A lone surrogate (valid in JSON's escapes, not in TOML or UTF-8): no preset, and the card is still written."""
    monkeypatch.chdir(tmp_path)
    _prompts(tmp_path / "prompts.safetensors", bmtpt_config=json.dumps(CONFIG | {"out": "t\ud800.safetensors"}))
    result = bmtpt("export", "--prompts", "prompts.safetensors", "--out", "exp")
    assert result.exit_code == 0, result.output
    card = (tmp_path / "exp" / "README.md").read_text(encoding="utf-8")
    assert "```toml" not in card and "\\ud800" in card


# --------------------------------------------------------------------------------- export: the recorded model
def _model_dir(path, d_model: int = 64):
    from transformers import T5Config

    T5Config(d_model=d_model, num_layers=2, num_heads=4, d_kv=16, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1).save_pretrained(path)
    return path


@pytest.mark.parametrize("recorded", ["local-t5", "./local-t5", "{tmp}/local-t5"], ids=["bare name", "relative", "absolute"])
def test_export_never_reads_a_local_model_only_the_file_names(recorded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _model_dir(tmp_path / "local-t5")
    recorded = recorded.format(tmp=tmp_path)
    _prompts(tmp_path / "prompts.safetensors", bmtpt_model=recorded)
    before = snapshot(tmp_path)
    message = one_line_error(bmtpt("export", "--prompts", "prompts.safetensors", "--out", "exp"))
    assert f"--model {recorded}" in message and "prompts.safetensors" in message, message
    assert snapshot(tmp_path) == before
    given = bmtpt("export", "--prompts", "prompts.safetensors", "--out", "exp", "--model", recorded)
    assert given.exit_code == 0, given.output


@pytest.mark.parametrize("recorded", ["../../etc", "/dev/null", "a/b/c", "x" * 5000, "t5\nbase"], ids=["up", "device", "deep", "huge", "newline"])
def test_export_refuses_a_recorded_model_that_is_no_model_name(recorded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _prompts(tmp_path / "prompts.safetensors", bmtpt_model=recorded)
    message = one_line_error(bmtpt("export", "--prompts", "prompts.safetensors", "--out", "exp"))
    assert "--model" in message and len(message) < 400, message
    assert not (tmp_path / "exp").exists()


def _particles(path, model: str) -> None:
    from bmtpt_cli.artifacts import PARTICLES, save_particles

    metadata = common_metadata(kind=PARTICLES, model=model, d_model=64, prompt_length=8, config={})
    save_particles(path, torch.randn(2, 8, 64), tasks=["demo_sentiment"], metadata=metadata)


@pytest.mark.parametrize("command", ["adapt", "evaluate"])
def test_a_command_never_loads_a_recorded_local_model_only_the_file_names(command, tmp_path, monkeypatch):
    """adapt --init and evaluate --prompts take the model a file records only when it is a model name."""
    monkeypatch.chdir(tmp_path)
    _model_dir(tmp_path / "local-t5")
    if command == "adapt":
        _particles(tmp_path / "in.safetensors", "./local-t5")
        argv = ["adapt", "--init", "in.safetensors", "--steps", "1", "--warmup-steps", "0", "--out", "t.safetensors"]
    else:
        _prompts(tmp_path / "in.safetensors", bmtpt_model="./local-t5")
        argv = ["evaluate", "--prompts", "in.safetensors", "--out", "r.json"]
    before = snapshot(tmp_path)
    message = one_line_error(bmtpt(*argv))
    assert "--model ./local-t5" in message and "in.safetensors" in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_header_nested_too_deep_is_one_line(command, tmp_path, monkeypatch):
    """A safetensors header (JSON) nested 100000 deep: every reader of it refuses in one line, none recurses."""
    monkeypatch.chdir(tmp_path)
    header = json.dumps({"__metadata__": {"bmtpt.kind": "prompts", "bmtpt.model": "tiny"}})[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}"
    header += " " * (-len(header) % 8)
    (tmp_path / "deep.safetensors").write_bytes(len(header).to_bytes(8, "little") + header.encode())
    before = snapshot(tmp_path)
    message = one_line_error(bmtpt(command, "--prompts", "deep.safetensors", "--out", "out"))
    assert "deep.safetensors" in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("fingerprint", [DEEP, "not json"], ids=["deep", "not JSON"])
def test_per_task_resume_refuses_a_finished_file_with_a_malformed_fingerprint(fingerprint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    g = torch.Generator().manual_seed(0)
    save_prompts(tmp_path / "dir" / "demo_sentiment.safetensors", torch.randn(8, 64, generator=g),
                 {"demo_sentiment": (torch.ones(8), torch.ones(64))}, metadata=_metadata(bmtpt_fingerprint=fingerprint))
    before = snapshot(tmp_path)
    message = one_line_error(bmtpt("source", "--per-task", "--tasks", "demo_sentiment", "--steps", "1", "--warmup-steps", "0",
                                    "--out", "dir", "--resume"))
    assert "demo_sentiment.safetensors" in message and "bmtpt.fingerprint" in message, message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("task", [DEEP, "demo\n```x\x1b[2J"], ids=["deep", "controls"])
def test_evaluate_names_a_crafted_task_in_one_short_line(task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _crafted(tmp_path / "prompts.safetensors", task, [f"tasks.{task}.a", f"tasks.{task}.b"])
    before = snapshot(tmp_path)
    message = one_line_error(bmtpt("evaluate", "--prompts", "prompts.safetensors", "--out", "r.json"))
    assert "unknown task" in message and len(message) < 300 and "\x1b" not in message, message
    assert snapshot(tmp_path) == before
