"""`bmtpt project` end to end (SPEC §5f): a tiny-model artifact moved to a T5 of another width, then
taken by adapt --init, evaluate --prompts and transfer-matrix on that model; its one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch

from bmtpt_cli.adapter.projector import new_projector, projector_from_file
from bmtpt_cli.artifacts import PROMPTS, common_metadata, load_prompts, save_prompts
from bmtpt_cli.artifacts.projector import ProjectorSpec, load_projector, save_projector
from clihelpers import FAST, bmtpt, listing, one_line_error, snapshot
from modelhelpers import WIDE_D_MODEL, per_task_prompts, save_small_t5, tiny_particles

QUICK = ["--steps", "2", "--batch-size", "4", "--hidden", "16"]
"""A projector trained in a second: the tests check the plumbing (test_projector.py checks the learning)."""


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    return save_small_t5(tmp_path_factory.mktemp("models") / "wide")


def test_projected_particles_are_adapted_and_evaluated_on_the_target_model(wide, tmp_path):
    particles = tiny_particles(tmp_path / "particles.safetensors")
    projected = tmp_path / "projected.safetensors"
    result = bmtpt("project", "--prompts", particles, "--model", wide, *QUICK, "--checkpoint-every", "1", "--out", projected)
    assert result.exit_code == 0, result.output
    assert f"wrote{projected}" in "".join(result.stdout.split())  # rich may wrap the path
    log = tmp_path / "projected.safetensors.projector.safetensors.log.jsonl"
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]
    assert not (tmp_path / "projected.safetensors.projector.safetensors.ckpt").exists()  # the projector replaces it
    adapted = tmp_path / "adapted.safetensors"
    adapt = bmtpt("adapt", "--init", projected, "--model", wide, "--tasks", "demo_rte", *FAST["adapt"], "--out", adapted)
    assert adapt.exit_code == 0, adapt.output
    artifact = load_prompts(adapted)
    assert artifact.metadata["bmtpt.model"] == str(wide) and artifact.shared.shape == (8, WIDE_D_MODEL)
    evaluate = bmtpt("evaluate", "--prompts", adapted, "--model", wide, "--out", tmp_path / "results.json")
    assert evaluate.exit_code == 0, evaluate.output


def test_per_task_prompts_project_to_a_directory_that_evaluate_and_transfer_matrix_take(wide, tmp_path):
    source = per_task_prompts(tmp_path / "source-prompts", model="tiny", d_model=64, tasks=["demo_sentiment", "demo_nli"])
    out = tmp_path / "wide-prompts"
    result = bmtpt("project", "--prompts", source, "--model", wide, *QUICK, "--out", out)
    assert result.exit_code == 0, result.output
    assert listing(out) == ["demo_nli.safetensors", "demo_sentiment.safetensors"]
    projector = projector_from_file(load_projector(tmp_path / "wide-prompts.projector.safetensors"))
    for task in ("demo_nli", "demo_sentiment"):
        artifact = load_prompts(out / f"{task}.safetensors")
        assert artifact.tasks == [task] and artifact.metadata["bmtpt.model"] == str(wide)
        assert artifact.metadata["bmtpt.method"] == "project"
        assert artifact.metadata["bmtpt.init"] == str(source / f"{task}.safetensors")
        assert artifact.metadata["bmtpt.projector_tasks"] == "demo_nli,demo_sentiment"
        with torch.no_grad():  # each task's own prompt, projected
            expected = projector(load_prompts(source / f"{task}.safetensors").prompt(task)[None])[0]
        assert torch.allclose(artifact.prompt(task), expected, atol=1e-6)
    evaluate = bmtpt("evaluate", "--prompts", out / "demo_nli.safetensors", "--model", wide, "--out", tmp_path / "r.json")
    assert evaluate.exit_code == 0, evaluate.output
    matrix = bmtpt("transfer-matrix", "--prompts-dir", out, "--model", wide, "--no-neurons", "--split", "validation",
                   "--out", tmp_path / "transfer")
    assert matrix.exit_code == 0, matrix.output


def test_a_multi_task_prompts_file_projects_to_a_directory_of_its_composed_prompts(wide, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shared = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    scales = {task: (torch.rand(8) + 0.5, torch.rand(64) + 0.5) for task in ("demo_sentiment", "demo_nli")}
    metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=64, prompt_length=8, config={}) | {"bmtpt.method": "bmtpt"}
    save_prompts(tmp_path / "prompts.safetensors", shared, scales, metadata=metadata)
    result = bmtpt("project", "--prompts", "prompts.safetensors", "--model", wide, *QUICK, "--tasks", "demo_nli")
    assert result.exit_code == 0, result.output
    assert listing(tmp_path / "projected-prompts") == ["demo_nli.safetensors", "demo_sentiment.safetensors"]
    saved = load_projector(tmp_path / "projected-prompts.projector.safetensors")
    assert saved.tasks == ["demo_nli"]
    projector = projector_from_file(saved)
    for task, (a, b) in scales.items():
        with torch.no_grad():
            expected = projector((shared * torch.outer(a, b))[None])[0]  # the composed W ⊙ a bᵀ, projected
        assert torch.allclose(load_prompts(tmp_path / "projected-prompts" / f"{task}.safetensors").prompt(task), expected, atol=1e-6)


def test_the_distance_objective_trains_on_the_tasks_both_directories_hold(wide, tmp_path):
    particles = tiny_particles(tmp_path / "particles.safetensors")
    source = per_task_prompts(tmp_path / "src", model="tiny", d_model=64, tasks=["demo_sentiment", "demo_nli"])
    target = per_task_prompts(tmp_path / "tgt", model=str(wide), d_model=WIDE_D_MODEL, tasks=["demo_nli", "demo_topic"])
    out = tmp_path / "projected.safetensors"
    result = bmtpt("project", "--prompts", particles, "--model", wide, "--objective", "distance", "--source-prompts", source,
                   "--target-prompts", target, "--steps", "20", "--hidden", "16", "--out", out)
    assert result.exit_code == 0, result.output
    saved = load_projector(tmp_path / "projected.safetensors.projector.safetensors")
    assert saved.objective == "distance" and saved.tasks == ["demo_nli"]
    trained_from = json.loads(saved.metadata["bmtpt.trained_from"])
    assert trained_from["source_prompts"] == str(source) and set(trained_from["sha256"]) == {
        "--source-prompts/demo_nli.safetensors", "--target-prompts/demo_nli.safetensors"}
    assert "mean squared distance" in result.stderr


# ----------------------------------------------------------------------------- refusals
@pytest.fixture
def inputs(wide, tmp_path):
    """A tiny-model particles file, per-task prompts of both models, and saved projectors that do not fit it."""
    tiny_particles(tmp_path / "particles.safetensors")
    per_task_prompts(tmp_path / "tiny-prompts", model="tiny", d_model=64, tasks=["demo_sentiment", "demo_nli"])
    per_task_prompts(tmp_path / "wide-prompts", model=str(wide), d_model=WIDE_D_MODEL, tasks=["demo_topic"])
    per_task_prompts(tmp_path / "wide-short", model=str(wide), d_model=WIDE_D_MODEL, tasks=["demo_nli"], length=4)
    for name, spec in {
        "from-toy": ProjectorSpec("toy", str(wide), 8, 128, WIDE_D_MODEL, 4, "tanh"),
        "short": ProjectorSpec("tiny", str(wide), 4, 64, WIDE_D_MODEL, 4, "tanh"),
        "fits": ProjectorSpec("tiny", str(wide), 8, 64, WIDE_D_MODEL, 4, "tanh"),
    }.items():
        metadata = {"bmtpt.objective": "task", "bmtpt.tasks": "demo_nli", "bmtpt.steps": "1", "bmtpt.config": "{}"}
        save_projector(tmp_path / f"{name}.projector.safetensors", new_projector(spec, 0).tensors(), spec, metadata=metadata)
    (tmp_path / "taken.safetensors").write_bytes(b"an earlier output")
    return tmp_path


REFUSALS = [
    (["--model", "tiny"], ["tiny", "--model", "none is needed"]),
    ([], ["--model"]),
    (["--model", "WIDE", "--objective", "distance"], ["--source-prompts", "--target-prompts"]),
    (["--model", "WIDE", "--objective", "distance", "--source-prompts", "tiny-prompts", "--target-prompts", "wide-prompts"],
     ["share no task", "demo_topic"]),
    (["--model", "WIDE", "--objective", "distance", "--source-prompts", "tiny-prompts", "--target-prompts", "wide-short"],
     ["length 4", "length 8"]),
    (["--model", "WIDE", "--objective", "distance", "--source-prompts", "wide-prompts", "--target-prompts", "wide-prompts"],
     ["--source-prompts", "tiny"]),
    (["--model", "WIDE", "--source-prompts", "tiny-prompts"], ["--source-prompts", "--objective distance"]),
    (["--projector", "from-toy.projector.safetensors"], ["toy", "tiny", "--projector"]),
    (["--projector", "short.projector.safetensors"], ["length 4", "--projector"]),
    (["--projector", "fits.projector.safetensors", "--model", "toy"], ["toy", "--model"]),
    (["--projector", "fits.projector.safetensors", "--steps", "3"], ["--steps", "--projector"]),
    (["--model", "WIDE", "--out", "taken.safetensors"], ["already exists", "--force"]),
    (["--model", "WIDE", "--resume"], ["--resume", "checkpoint"]),
    (["--model", "WIDE", "--tasks", "demo_rte", "--prompts", "tiny-prompts"], ["demo_rte", "tiny-prompts"]),
    (["--model", "WIDE", "--prompts", "tiny-prompts", "--out", "out.safetensors"], ["directory", "--out"]),
    (["--model", "WIDE", "--prompts", "particles.safetensors", "--out", "particles.safetensors", "--force"], ["--prompts"]),
]


@pytest.mark.parametrize("args,words", REFUSALS, ids=[" ".join(a) or "no-model" for a, _ in REFUSALS])
def test_refusals_are_one_line_and_write_nothing(args, words, inputs, wide, monkeypatch):
    monkeypatch.chdir(inputs)
    args = [str(wide) if a == "WIDE" else a for a in args]
    if "--prompts" not in args:
        args = ["--prompts", "particles.safetensors", *args]
    before = snapshot(inputs)
    line = one_line_error(bmtpt("project", *args))
    for word in words:
        assert word in line, line
    assert snapshot(inputs) == before


def test_the_input_format_comes_from_the_artifact_and_the_model_from_the_flag(tmp_path, monkeypatch):
    from clihelpers import toy_particles

    monkeypatch.chdir(tmp_path)
    toy_particles("toy.safetensors")  # the demo's source settings: taskless inputs, 4 target tokens
    result = bmtpt("project", "--prompts", "toy.safetensors", "--model", "tiny", "--print-config")
    assert result.exit_code == 0, result.output
    shown = result.stdout
    assert 'model = "tiny"  # --model' in shown  # the target, never the artifact's toy
    assert "taskless = true  # from toy.safetensors" in shown and "max_target_length = 4  # from toy.safetensors" in shown
