"""`bmtpt export` through the CLI: listed in --help, one-line refusals, and adapt → export → PEFT end to end."""

from __future__ import annotations

import json

import pytest
import torch

from bmtpt_cli.artifacts import PARTICLES, PROMPTS, common_metadata, load_prompts, save_particles, save_prompts
from clihelpers import FAST, bmtpt, listing, snapshot
from reference import batch_loss

# (name, argv after `bmtpt export --prompts prompts.safetensors`, words the one-line message must contain)
REFUSALS = [
    ("out exists", ["--out", "taken"], ["'taken' already exists", "--force"]),
    ("unknown task", ["--tasks", "demo_review,cb"], ["cb not in", "demo_review, demo_rte", "--tasks"]),
    ("multitask as tensors", ["--format", "safetensors", "--multitask"], ["--multitask", "--format peft"]),
    ("unknown format", ["--format", "onnx"], ["--format", "'onnx'", "peft", "safetensors"]),
    ("base model of another width", ["--model", "wide"], ["d_model=32", "width 64", "--model"]),
]


def _prompts(path):
    """A two-task prompts file for the tiny model (l = 8), as bmtpt adapt writes them."""
    g = torch.Generator().manual_seed(0)
    scales = {task: (torch.randn(8, generator=g), torch.randn(64, generator=g)) for task in ("demo_review", "demo_rte")}
    metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=64, prompt_length=8, config={}) | {
        "bmtpt.dev_metrics": json.dumps({"demo_review": 0.5, "demo_rte": 0.5}),
    }
    save_prompts(path, torch.randn(8, 64, generator=g), scales, metadata=metadata)


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_help_lists_export_and_its_options():
    assert "export" in bmtpt("--help").stdout
    result = bmtpt("export", "--help")
    assert result.exit_code == 0
    flattened = " ".join(result.stdout.split())
    for option in ("--prompts", "--format", "--tasks", "--multitask", "--out", "--force"):
        assert option in flattened
    for unused in ("--seed", "--device", "--precision", "--taskless", "--prompt-length"):  # export runs no model
        assert unused not in flattened
    refused = bmtpt("export", "--seed", "3")
    assert refused.exit_code == 2 and "No such option" in refused.output


@pytest.mark.parametrize("name,argv,words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_bad_export_input_gives_one_line_and_changes_nothing(name, argv, words, tmp_path, monkeypatch):
    from transformers import T5Config

    monkeypatch.chdir(tmp_path)
    _prompts(tmp_path / "prompts.safetensors")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    T5Config(d_model=32, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1).save_pretrained(tmp_path / "wide")
    before = snapshot(tmp_path)
    message = _one_line_error(bmtpt("export", "--prompts", "prompts.safetensors", *argv))
    for word in words:
        assert word in message, message
    assert snapshot(tmp_path) == before


def test_a_particles_file_is_refused_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=8, config={})
    save_particles(tmp_path / "particles.safetensors", torch.randn(2, 8, 64), tasks=["demo_nli"], metadata=metadata)
    message = _one_line_error(bmtpt("export", "--prompts", "particles.safetensors"))
    assert "holds source particles, not target prompts" in message
    assert "bmtpt adapt --init particles.safetensors" in message
    assert listing(tmp_path) == ["particles.safetensors"]


@pytest.mark.integration
def test_adapt_then_export_loads_in_peft_with_bmtpts_loss(tmp_path, monkeypatch):
    """The chain a user runs: adapt two demo targets, export both ways, load the multitask one with PEFT."""
    peft = pytest.importorskip("peft")
    from bmtpt_cli.data.registry import resolve_tasks
    from bmtpt_cli.runner.model import load_frozen_t5
    from bmtpt_cli.runner.runner import FrozenT5Runner

    monkeypatch.chdir(tmp_path)
    adapt = bmtpt("adapt", *FAST["adapt"], "--init", "random", "--out", "prompts.safetensors")
    assert adapt.exit_code == 0, adapt.output

    single = bmtpt("export", "--prompts", "prompts.safetensors", "--out", "adapters")
    assert single.exit_code == 0, single.output
    assert "demo_review: adapters/demo_review" in single.stdout and "wrote adapters" in single.stdout
    multi = bmtpt("export", "--prompts", "prompts.safetensors", "--multitask", "--out", "multi")
    assert multi.exit_code == 0, multi.output
    assert "demo_rte: task_ids=1 in multi" in multi.stdout
    tensors = bmtpt("export", "--prompts", "prompts.safetensors", "--format", "safetensors", "--out", "tensors")
    assert tensors.exit_code == 0, tensors.output
    assert listing(tmp_path / "tensors") == ["README.md", "demo_review.safetensors", "demo_rte.safetensors"]

    card = (tmp_path / "multi" / "README.md").read_text()
    dev = json.loads(load_prompts(tmp_path / "prompts.safetensors").metadata["bmtpt.dev_metrics"])
    assert f"| demo_rte | 1 | `multi` | accuracy | {dev['demo_rte']:.4f} |" in card
    assert "bmtpt adapt --preset adapt-run.toml" in card and "\nsteps = 4\n" in card and "\nbatch_size = 4\n" in card

    again = bmtpt("export", "--prompts", "prompts.safetensors", "--out", "adapters")
    assert "already exists" in _one_line_error(again)
    assert bmtpt("export", "--prompts", "prompts.safetensors", "--out", "adapters", "--force").exit_code == 0

    prompts = load_prompts(tmp_path / "prompts.safetensors")
    model, tokenizer = load_frozen_t5("tiny")
    runner = FrozenT5Runner(*load_frozen_t5("tiny"), max_target_length=16)
    loaded = peft.PeftModel.from_pretrained(model, str(tmp_path / "multi")).eval()
    examples = [(task.name, e) for task in resolve_tasks("demo_review,demo_rte") for e in task.examples("validation")[:3]]
    batch = runner.encode([e.source for _, e in examples], [e.target for _, e in examples])
    with torch.no_grad():
        ours = batch_loss(runner, torch.stack([prompts.prompt(task) for task, _ in examples]), batch).item()
        theirs = loaded(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels,
            task_ids=torch.tensor([0 if task == "demo_review" else 1 for task, _ in examples]),
        ).loss.item()
    assert abs(ours - theirs) < 1e-5, (ours, theirs)
