"""SPoT's top-k multi-task mixture (issue 23): `spot-mixture-K` source-trains one prompt on the data of the K
source tasks nearest to the target's task embedding together with the target's examples, then tunes it."""

import json

import pytest
import torch

from bmtpt_cli.artifacts import PROMPTS, common_metadata, load_particles, save_prompts
from bmtpt_cli.data.config import DataConfig
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods.base import StartRequest
from bmtpt_cli.methods.init import RetrievalTarget
from bmtpt_cli.methods.registry import method_named, method_of_artifact
from clihelpers import adapt_retrieving, bmtpt, one_line_error
from configs import adapt_config

SEED, SOURCE_STEPS = 5, 3
SOURCES = ("demo_sentiment", "demo_topic", "demo_review")
CONFIG = adapt_config(batch_size=4, steps=50, warmup_steps=7, eval_every=10, weight_decay=1e-5)


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    """Per-task prompts of three demo tasks made by `bmtpt source --per-task` (the recipe a mixture reuses)."""
    directory = tmp_path_factory.mktemp("per-task") / "prompts"
    made = bmtpt("source", "--per-task", "--tasks", ",".join(SOURCES), "--particles", "1", "--steps", str(SOURCE_STEPS),
                 "--examples-per-task", "2", "--out", directory)
    assert made.exit_code == 0, made.output
    return directory


@pytest.fixture(scope="module")
def target():
    """demo_nli with its whole training split, so the mixture equals a plain `bmtpt source` run on the same tasks."""
    (task,) = resolve_tasks("demo_nli")
    return RetrievalTarget(task.name, task.examples("train"), "words", steps=2, measure="mean", config=CONFIG)


def start(method, runner, target, directory):
    data = DataConfig(taskless=False, label_style="words", data_dir=None)
    return method_named(method).start(StartRequest(runner, SEED, source=str(directory), target=target,
                                                   load_examples=data.train_reader()))


def test_the_mixture_is_a_source_run_on_the_nearest_tasks_and_the_target(runner, target, directory, tmp_path):
    init = start("spot-mixture-2", runner, target, directory)
    nearest = start("spot-average-2", runner, target, directory).details["chosen"]  # the same retrieval, another method
    assert init.details["chosen"] == nearest and init.details["mixture"]["tasks"] == [*nearest, "demo_nli"]
    assert init.details["mixture"]["steps"] == SOURCE_STEPS and init.details["mixture"]["examples_per_task"] == 2
    # the same prompt made another way: a one-particle `bmtpt source` run on those tasks with the per-task recipe
    out = tmp_path / "m1.safetensors"
    made = bmtpt("source", "--tasks", ",".join([*nearest, "demo_nli"]), "--particles", "1", "--steps", str(SOURCE_STEPS),
                 "--examples-per-task", "2", "--seed", str(SEED), "--out", out)
    assert made.exit_code == 0, made.output
    expected = load_particles(out)[0][0]
    assert torch.allclose(init.prompt, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(init.prior_mean, init.prompt)


def test_a_directory_without_its_recipe_is_refused(runner, target, tmp_path):
    for task in SOURCES:
        metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=64, prompt_length=4, config={})
        save_prompts(tmp_path / f"{task}.safetensors", torch.randn(4, 64), {task: (torch.ones(4), torch.ones(64))},
                     metadata=metadata)
    with pytest.raises(BmtptError, match="does not record the source settings.*bmtpt source --per-task"):
        start("spot-mixture-1", runner, target, tmp_path)
    without_data = method_named("spot-mixture-1").start
    with pytest.raises(BmtptError, match="trains on its sources' data"):
        without_data(StartRequest(runner, SEED, source=str(tmp_path), target=target))


def test_names_and_refusals():
    method = method_named("spot-mixture-3")
    assert method.name == "spot-mixture-3" and method.retrieves and method.candidates is None
    assert method_of_artifact({"bmtpt.method": "spot-mixture-2"}).name == "spot-mixture-2"
    with pytest.raises(BmtptError, match="K is 1 or more"):
        method_named("spot-mixture-0")


@pytest.mark.integration
def test_adapt_and_fewshot_run_it(directory, tmp_path):
    _, prompts, details = adapt_retrieving("spot-mixture-2", directory, tmp_path / "p.safetensors")
    assert prompts.metadata["bmtpt.method"] == "spot-mixture-2" and details["mixture"]["tasks"][-1] == "demo_nli"
    assert "the prompt trained on the mixture of" in prompts.metadata["bmtpt.prior"]
    grid = bmtpt("fewshot", "--tasks", "demo_nli", "--shots", "4", "--seeds", "1", "--steps", "2", "--methods", "spot,spot-mixture-1",
                 "--source-prompts", directory, "--retrieval-steps", "1", "--dev-shots", "0", "--out", tmp_path / "grid")
    assert grid.exit_code == 0, grid.output
    rows = [json.loads(line) for line in (tmp_path / "grid" / "results.jsonl").read_text().splitlines()]
    assert [row["method"] for row in rows] == ["spot", "spot-mixture-1"]
    mixture = rows[1]["init_details"]["mixture"]
    assert mixture["tasks"] == [rows[0]["init_details"]["chosen"], "demo_nli"] and mixture["target_examples"] == 4
    assert "spot-mixture-0" in one_line_error(bmtpt("fewshot", "--tasks", "demo_nli", "--methods", "spot-mixture-0",
                                                    "--source-prompts", directory, "--out", tmp_path / "x"))
