"""The baselines through the CLI: `source --per-task` → `adapt --init retrieve:DIR` / `--init DIR/t.safetensors`
/ `evaluate --prompts DIR/t.safetensors`, and `adapt --init-particle i`."""

import json

import pytest
import torch
from safetensors import safe_open

from bmtpt_cli.artifacts import load_particles, load_prompts
from clihelpers import bmtpt

pytestmark = pytest.mark.integration

TASKS = "demo_sentiment,demo_nli,demo_topic"
SMALL = ["--steps", "3", "--prompt-length", "4", "--examples-per-task", "2", "--warmup-steps", "1"]
ADAPT = ["--steps", "2", "--eval-every", "2", "--batch-size", "4", "--warmup-steps", "0"]


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "source-prompts"
    result = bmtpt("source", "--per-task", "--tasks", TASKS, *SMALL, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}/ (one prompt per task: {TASKS.replace(',', ', ')})" in " ".join(result.stdout.split())
    return out


def test_per_task_writes_a_prompts_file_per_task(directory):
    assert sorted(p.name for p in directory.glob("*.safetensors")) == [f"{t}.safetensors" for t in sorted(TASKS.split(","))]
    with safe_open(str(directory / "demo_nli.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["bmtpt.kind"] == "prompts" and metadata["bmtpt.tasks"] == "demo_nli"
    assert json.loads(metadata["bmtpt.config"])["particles"] == 1  # the demo preset's 3 gave way to --per-task


def test_per_task_refusals(directory):
    again = bmtpt("source", "--per-task", "--tasks", TASKS, *SMALL, "--out", directory)
    _one_line_error(again, str(directory), "--resume", "--force")
    three = bmtpt("source", "--per-task", "--particles", "3", *SMALL, "--out", directory.parent / "x")
    _one_line_error(three, "--particles 1")


def test_retrieval_adapts_from_the_most_similar_other_task(directory, tmp_path):
    out = tmp_path / "retrieved.safetensors"
    result = bmtpt("adapt", "--init", f"retrieve:{directory}", "--tasks", "demo_nli", "--retrieval-steps", "2",
                   *ADAPT, "--out", out)
    assert result.exit_code == 0, result.output
    prompts = load_prompts(out)
    details = json.loads(prompts.metadata["bmtpt.init_details"])
    similarities = details["similarities"]
    assert set(similarities) == {"demo_sentiment", "demo_topic"} and details["excluded"] == ["demo_nli"]
    assert details["chosen"] == max(similarities, key=similarities.get)
    assert f"retrieve: {details['chosen']} initialises the target" in " ".join(result.stderr.split())
    assert f"retrieved source prompt of {details['chosen']}" in prompts.metadata["bmtpt.prior"]
    assert prompts.metadata["bmtpt.init"] == f"retrieve:{directory}"
    _one_line_error(bmtpt("adapt", "--init", f"retrieve:{directory}", "--tasks", "demo_nli,demo_rte", *ADAPT,
                          "--out", tmp_path / "two.safetensors"), "one target task")


def test_a_per_task_file_is_an_init_and_a_prompts_file_to_evaluate(directory, tmp_path):
    prompt = directory / "demo_topic.safetensors"
    result = bmtpt("adapt", "--init", prompt, "--tasks", "demo_nli", *ADAPT, "--out", tmp_path / "p.safetensors")
    assert result.exit_code == 0, result.output
    result = bmtpt("evaluate", "--prompts", prompt, "--out", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["task"] == "demo_topic"


def test_init_particle_adapts_from_that_particle(tmp_path):
    particles_path = tmp_path / "particles.safetensors"
    assert bmtpt("source", *SMALL, "--particles", "3", "--out", particles_path).exit_code == 0
    particles, _ = load_particles(particles_path)
    out = tmp_path / "p.safetensors"
    result = bmtpt("adapt", "--init", particles_path, "--init-particle", "1", "--tasks", "demo_rte", "--steps", "1",
                   "--eval-every", "1", "--batch-size", "2", "--warmup-steps", "0", "--lr-shared", "1e-9",
                   "--lr-scales", "1e-9", "--out", out)
    assert result.exit_code == 0, result.output
    prompts = load_prompts(out)
    composed = prompts.prompt("demo_rte")  # one step of AdamW at lr 1e-9 moves each entry by at most ~1e-9
    torch.testing.assert_close(composed, particles[1], atol=1e-6, rtol=0)
    assert (composed - particles.mean(dim=0)).abs().max() > 0.1
    assert json.loads(prompts.metadata["bmtpt.init_details"]) == {"particle": 1, "num_particles": 3}
    assert "particle 1 of the init" in prompts.metadata["bmtpt.prior"]
    _one_line_error(bmtpt("adapt", "--init", particles_path, "--init-particle", "3", "--out", tmp_path / "q.safetensors"),
                    "M = 3")
    _one_line_error(bmtpt("adapt", "--init", "random", "--init-particle", "0", "--out", tmp_path / "q.safetensors"),
                    "--init-particle")
