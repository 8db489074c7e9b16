"""The whole chain through the CLI on the demo preset: source → adapt → evaluate, and resume."""

import json
import os
import signal

import pytest
import torch
from safetensors import safe_open

from clihelpers import FAST, bmtpt, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Run the three commands once; the tests below inspect what they wrote."""
    root = tmp_path_factory.mktemp("chain")
    particles, prompts, results = root / "particles.safetensors", root / "prompts.safetensors", root / "results.json"
    runs = {
        "source": bmtpt("source", *FAST["source"], "--out", particles),
        "adapt": bmtpt("adapt", *FAST["adapt"], "--init", particles, "--out", prompts),
        "evaluate": bmtpt("evaluate", "--prompts", prompts, "--out", results),
    }
    return root, runs


def _read(path):
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata()


def test_each_command_succeeds(chain):
    _, runs = chain
    for name, result in runs.items():
        assert result.exit_code == 0, f"{name}: {result.output}"


def test_particles_artifact_has_the_documented_tensor_and_metadata(chain):
    root, _ = chain
    tensors, metadata = _read(root / "particles.safetensors")
    assert list(tensors) == ["particles"]
    assert tensors["particles"].shape == (2, 8, 64)  # M = 2 (flag), l = 8 (demo preset), d = 64 (tiny)
    assert metadata["bmtpt.kind"] == "particles" and metadata["bmtpt.format"] == "1"
    assert metadata["bmtpt.model"] == "tiny" and metadata["bmtpt.d_model"] == "64"
    assert metadata["bmtpt.prompt_length"] == "8" and metadata["bmtpt.num_particles"] == "2"
    assert metadata["bmtpt.tasks"] == "demo_sentiment,demo_nli,demo_topic"
    config = json.loads(metadata["bmtpt.config"])
    assert config["steps"] == 6 and config["particles"] == 2 and config["model"] == "tiny"
    assert metadata["bmtpt.version"]
    assert not (root / "particles.safetensors.ckpt").exists()  # a finished run's checkpoint is replaced by its artifact
    log = [json.loads(line) for line in (root / "particles.safetensors.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "bandwidth", "mean_distance"} <= set(log[0])


def test_prompts_artifact_has_shared_and_per_task_scales(chain):
    root, _ = chain
    tensors, metadata = _read(root / "prompts.safetensors")
    assert tensors["shared"].shape == (8, 64)
    for task in ("demo_review", "demo_rte"):
        assert tensors[f"tasks.{task}.a"].shape == (8,)
        assert tensors[f"tasks.{task}.b"].shape == (64,)
    assert metadata["bmtpt.kind"] == "prompts"
    assert metadata["bmtpt.init"].endswith("particles.safetensors")
    import hashlib

    assert metadata["bmtpt.init_sha256"] == hashlib.sha256((root / "particles.safetensors").read_bytes()).hexdigest()
    dev = json.loads(metadata["bmtpt.dev_metrics"])
    assert set(dev) == {"demo_review", "demo_rte"} and all(0 <= v <= 1 for v in dev.values())


def test_evaluate_writes_results_and_prints_a_table(chain):
    root, runs = chain
    report = json.loads((root / "results.json").read_text())
    rows = {row["task"]: row for row in report["results"]}
    assert set(rows) == {"demo_review", "demo_rte"}
    for row in rows.values():
        assert row["metric"] == "accuracy" and row["decode"] == "rank" and row["examples"] == 64
        assert 0 <= row["value"] <= 1
        assert f"{row['value']:.4f}" in runs["evaluate"].stdout
    assert "demo_review" in runs["evaluate"].stdout


def test_evaluate_by_generation(chain, tmp_path):
    root, _ = chain
    result = bmtpt("evaluate", "--prompts", root / "prompts.safetensors", "--decode", "generate", "--out", tmp_path / "g.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "g.json").read_text())["results"]
    assert {row["decode"] for row in rows} == {"generate"}


def test_fewshot_probe_reports_mean_and_std_over_seeds(chain, tmp_path):
    root, _ = chain
    out = tmp_path / "fewshot.json"
    result = bmtpt("evaluate", "--shots", "4", "--init", root / "particles.safetensors", "--tasks", "demo_rte",
                   "--seeds", "0,1", "--steps", "2", "--batch-size", "4", "--out", out)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["results"]
    assert row["task"] == "demo_rte" and row["shots"] == 4 and set(row["per_seed"]) == {"0", "1"}
    values = list(row["per_seed"].values())
    assert row["value"] == pytest.approx(sum(values) / 2)
    assert "±" in result.stdout


def test_same_seed_gives_the_same_particles(chain, tmp_path):
    root, _ = chain
    assert bmtpt("source", *FAST["source"], "--out", tmp_path / "again.safetensors").exit_code == 0
    again, _ = _read(tmp_path / "again.safetensors")
    first, _ = _read(root / "particles.safetensors")
    assert torch.equal(again["particles"], first["particles"])


def test_resume_continues_a_stopped_run(chain, tmp_path, monkeypatch):
    import bmtpt_cli.source.svgd as source_training

    root, _ = chain
    out = tmp_path / "particles.safetensors"
    real_step, calls = source_training.svgd_step, []

    def step_then_ctrl_c_at_3(*args, **kwargs):
        calls.append(1)
        result = real_step(*args, **kwargs)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(source_training, "svgd_step", step_then_ctrl_c_at_3)
    stopped = bmtpt("source", *FAST["source"], "--out", out)
    monkeypatch.setattr(source_training, "svgd_step", real_step)
    assert stopped.exit_code == 130
    assert "--resume" in stopped.stderr and not out.exists() and (tmp_path / "particles.safetensors.ckpt").exists()

    again = bmtpt("source", *FAST["source"], "--out", out)  # without --resume: refuses to clobber the checkpoint
    assert again.exit_code == 2 and "--resume" in again.stderr

    resumed = bmtpt("source", *FAST["source"], "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    resumed_particles, _ = _read(out)
    uninterrupted, _ = _read(root / "particles.safetensors")
    assert torch.equal(resumed_particles["particles"], uninterrupted["particles"])  # bit-identical


def test_adapt_random_init_is_vanilla_prompt_tuning(tmp_path):
    result = bmtpt("adapt", *FAST["adapt"], "--init", "random", "--out", tmp_path / "p.safetensors")
    assert result.exit_code == 0, result.output
    tensors, metadata = _read(tmp_path / "p.safetensors")
    assert tensors["shared"].shape == (8, 64) and metadata["bmtpt.init"] == "random"


def test_output_exists_needs_force(chain, tmp_path):
    root, _ = chain
    out = tmp_path / "p.safetensors"
    out.write_bytes(b"keep me")
    before = snapshot(tmp_path)
    refused = bmtpt("adapt", *FAST["adapt"], "--init", root / "particles.safetensors", "--out", out)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert snapshot(tmp_path) == before
    forced = bmtpt("adapt", *FAST["adapt"], "--init", root / "particles.safetensors", "--out", out, "--force")
    assert forced.exit_code == 0 and out.read_bytes() != b"keep me"


def test_an_init_file_brings_its_own_prompt_length(tmp_path):
    """The preset's top-level prompt_length (8) sizes new prompts; it must not reject a file of another length."""
    particles, prompts = tmp_path / "l5.safetensors", tmp_path / "p5.safetensors"
    assert bmtpt("source", *FAST["source"], "--prompt-length", "5", "--out", particles).exit_code == 0
    adapted = bmtpt("adapt", *FAST["adapt"], "--init", particles, "--out", prompts)
    assert adapted.exit_code == 0, adapted.output
    tensors, metadata = _read(prompts)
    assert tensors["shared"].shape == (5, 64) and metadata["bmtpt.prompt_length"] == "5"
    assert bmtpt("evaluate", "--prompts", prompts, "--out", tmp_path / "r.json").exit_code == 0
    explicit = bmtpt("adapt", *FAST["adapt"], "--init", particles, "--prompt-length", "8", "--out", tmp_path / "x.safetensors")
    assert explicit.exit_code == 2 and "--prompt-length 8" in explicit.stderr
