"""`spot-average-K` (SPoT's top-k weighted average, issue 23): the K source prompts nearest to the target's task
embedding, averaged with weights ∝ their similarity; K = 1 is today's retrieval; through adapt and fewshot."""

import json

import pytest
import torch

from bmtpt_cli.artifacts import PROMPTS, common_metadata, load_prompts, save_prompts
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods.base import StartRequest
from bmtpt_cli.methods.init import RetrievalTarget, resolve_init
from bmtpt_cli.methods.registry import method_named, method_of_artifact
from bmtpt_cli.methods.spot import similarity_weights
from bmtpt_cli.data.registry import resolve_tasks
from clihelpers import bmtpt, one_line_error
from configs import adapt_config

LENGTH, SEED, STEPS, D = 4, 5, 3, 64
CONFIG = adapt_config(batch_size=4, steps=50, warmup_steps=7, eval_every=10, weight_decay=1e-5)


@pytest.fixture(scope="module")
def target():
    (task,) = resolve_tasks("demo_nli")
    return RetrievalTarget(task.name, task.examples("train")[:8], "words", steps=STEPS, measure="mean", config=CONFIG)


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    """Four per-task prompts of the tiny model's width, the target's own among them."""
    directory = tmp_path_factory.mktemp("sources")
    generator = torch.Generator().manual_seed(3)
    for task in ("demo_sentiment", "demo_topic", "demo_review", "demo_nli"):
        prompt = torch.randn(LENGTH, D, generator=generator)
        metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=D, prompt_length=LENGTH, config={})
        save_prompts(directory / f"{task}.safetensors", prompt, {task: (torch.ones(LENGTH), torch.ones(D))}, metadata=metadata)
    return directory


def start(method, runner, target, directory):
    return method_named(method).start(StartRequest(runner, SEED, source=str(directory), target=target))


def test_the_average_of_one_is_todays_retrieval(runner, target, directory):
    one = start("spot-average-1", runner, target, directory)
    retrieved = resolve_init(f"retrieve:{directory}", runner, prompt_length=None, seed=SEED, target=target)
    assert torch.equal(one.prompt, retrieved.prompt) and torch.equal(one.prior_mean, retrieved.prompt)
    assert one.details["chosen"] == [retrieved.details["chosen"]] and one.details["weights"] == {retrieved.details["chosen"]: 1.0}
    assert one.details["similarities"] == retrieved.details["similarities"]


def test_the_average_is_the_similarity_weighted_sum_of_the_top_k(runner, target, directory):
    init = start("spot-average-2", runner, target, directory)
    retrieved = resolve_init(f"retrieve:{directory}", runner, prompt_length=None, seed=SEED, target=target)
    similarities = retrieved.details["similarities"]  # the target's own prompt left out
    assert set(similarities) == {"demo_sentiment", "demo_topic", "demo_review"}
    top = sorted(similarities, key=lambda task: -similarities[task])[:2]
    assert init.details["chosen"] == top and init.details["excluded"] == ["demo_nli"]
    positive = [max(0.0, similarities[task]) for task in top]
    weights = [v / sum(positive) for v in positive] if sum(positive) > 0 else [0.5, 0.5]
    expected = sum(w * load_prompts(directory / f"{task}.safetensors").shared.double() for w, task in zip(weights, top))
    assert torch.allclose(init.prompt.double(), expected, atol=1e-6) and torch.equal(init.prior_mean, init.prompt)
    assert init.details["weights"] == pytest.approx(dict(zip(top, weights)))


def test_weights_follow_similarity_with_negatives_as_zero():
    assert similarity_weights([0.6, 0.2]) == pytest.approx([0.75, 0.25])
    assert similarity_weights([0.5, -0.3]) == pytest.approx([1.0, 0.0])
    assert similarity_weights([-0.1, -0.2, 0.0]) == pytest.approx([1 / 3] * 3)


def test_k_beyond_the_sources_takes_every_other_source(runner, target, directory):
    init = start("spot-average-5", runner, target, directory)
    assert sorted(init.details["chosen"]) == ["demo_review", "demo_sentiment", "demo_topic"]  # never the target's own
    assert sum(init.details["weights"].values()) == pytest.approx(1.0) and init.details["top"] == 5


def test_names_and_refusals(tmp_path):
    assert method_named("spot-average-3").name == "spot-average-3" and method_named("spot-average-3").retrieves
    assert method_of_artifact({"bmtpt.method": "spot-average-2"}).name == "spot-average-2"
    with pytest.raises(BmtptError, match="K is 1 or more"):
        method_named("spot-average-0")
    with pytest.raises(BmtptError, match="spot-average-K"):
        method_named("spot-avg-3")


@pytest.mark.integration
def test_adapt_and_fewshot_run_it(directory, tmp_path):
    out = tmp_path / "p.safetensors"
    result = bmtpt("adapt", "--method", "spot-average-2", "--init", directory, "--tasks", "demo_nli", "--retrieval-steps", "2",
                   "--steps", "2", "--eval-every", "2", "--batch-size", "4", "--warmup-steps", "0", "--out", out)
    assert result.exit_code == 0, result.output
    prompts = load_prompts(out)
    details = json.loads(prompts.metadata["bmtpt.init_details"])
    assert prompts.metadata["bmtpt.method"] == "spot-average-2" and len(details["chosen"]) == 2
    assert "similarity-weighted average of the retrieved source prompts" in prompts.metadata["bmtpt.prior"]
    assert "similarity-weighted average of the top 2" in " ".join(result.stderr.split())
    assert bmtpt("evaluate", "--prompts", out, "--out", tmp_path / "r.json").exit_code == 0
    grid = bmtpt("fewshot", "--tasks", "demo_nli", "--shots", "4", "--seeds", "1", "--steps", "2", "--methods", "spot,spot-average-2",
                 "--source-prompts", directory, "--retrieval-steps", "1", "--dev-shots", "0", "--out", tmp_path / "grid")
    assert grid.exit_code == 0, grid.output
    rows = [json.loads(line) for line in (tmp_path / "grid" / "results.jsonl").read_text().splitlines()]
    assert [row["method"] for row in rows] == ["spot", "spot-average-2"]
    assert rows[1]["init_details"]["method"] == "retrieve-average" and len(rows[1]["init_details"]["chosen"]) == 2
    assert "spot-average-0" in one_line_error(bmtpt("fewshot", "--tasks", "demo_nli", "--methods", "spot-average-0",
                                                    "--source-prompts", directory, "--out", tmp_path / "x"))
