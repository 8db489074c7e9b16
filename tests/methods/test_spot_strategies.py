"""SPoT's strategies beyond top-1 retrieval (issue 23): `spot-average-K`, the K source prompts nearest to the
target's task embedding averaged with weights ∝ their similarity; `spot-best-of-K` and `spot-oracle`, tuned from
each of the K nearest (every) source prompt with the best on dev kept. K = 1 is today's retrieval in both."""

import json

import pytest
import torch

from bmtpt_cli.artifacts import PROMPTS, common_metadata, file_sha256, load_prompts, save_prompts
from bmtpt_cli.errors import BmtptError
from bmtpt_cli.methods.base import StartRequest
from bmtpt_cli.methods.init import RetrievalTarget, resolve_init
from bmtpt_cli.methods.registry import method_named, method_of_artifact
from bmtpt_cli.methods.spot import similarity_weights
from bmtpt_cli.data.registry import resolve_tasks
from clihelpers import adapt_retrieving, bmtpt, one_line_error
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
    result, prompts, details = adapt_retrieving("spot-average-2", directory, out)
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


def grid(directory, out, methods, *extra):
    return bmtpt("fewshot", "--tasks", "demo_nli", "--shots", "4", "--seeds", "2", "--steps", "4", "--methods", methods,
                 "--source-prompts", directory, "--retrieval-steps", "1", "--dev-shots", "8", "--out", out, *extra)


def rows_of(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.integration
def test_best_of_one_is_todays_retrieval_and_best_of_k_keeps_the_best_dev(directory, tmp_path):
    result = grid(directory, tmp_path / "g", "spot,spot-best-of-1,spot-best-of-3,spot-oracle")
    assert result.exit_code == 0, result.output
    by = {}
    for row in rows_of(tmp_path / "g"):
        by.setdefault(row["method"], []).append(row)
    for spot, one in zip(by["spot"], by["spot-best-of-1"]):  # K = 1: the nearest prompt, the same cell
        assert one["value"] == spot["value"] and one["init_sha256"] == spot["init_sha256"]
        assert one["init_details"]["chosen"] == spot["init_details"]["chosen"]
    for row in by["spot-best-of-3"] + by["spot-oracle"]:
        details = row["init_details"]
        candidates = details["candidates"]
        assert details["method"] == "retrieve-best" and len(candidates) == 3  # every other source: 3 of the 4 files
        assert [c["rank"] for c in candidates] == [1, 2, 3]
        best = max(candidates, key=lambda c: c["dev"])
        kept = next(c for c in candidates if c["rank"] == details["kept_rank"])
        assert kept["dev"] == best["dev"] and details["chosen"] == kept["chosen"]  # the first of the best on a tie
        assert row["init_sha256"] == file_sha256(directory / f"{kept['chosen']}.safetensors")
    for three, oracle in zip(by["spot-best-of-3"], by["spot-oracle"]):  # 3 sources: the oracle is best-of-3
        assert oracle["value"] == three["value"] and oracle["init_details"]["candidates"] == three["init_details"]["candidates"]


@pytest.mark.integration
def test_a_kept_candidate_scores_as_its_own_run(directory, tmp_path):
    """The kept candidate's test score is that of a cell started from its source prompt alone (best-of-1 of a
    directory holding only that prompt and the target's own)."""
    assert grid(directory, tmp_path / "g", "spot-best-of-2").exit_code == 0
    alone = tmp_path / "alone"
    alone.mkdir()
    rows = rows_of(tmp_path / "g")
    for row in rows:
        kept = row["init_details"]["chosen"]
        for name in (kept, "demo_nli"):
            (alone / f"{name}.safetensors").write_bytes((directory / f"{name}.safetensors").read_bytes())
        single = grid(alone, tmp_path / f"one-{row['seed']}", "spot-best-of-1", "--seeds", f"{row['seed']}-{row['seed']}")
        assert single.exit_code == 0, single.output
        (again,) = rows_of(tmp_path / f"one-{row['seed']}")
        assert again["value"] == pytest.approx(row["value"], abs=1e-6)
        for path in alone.iterdir():
            path.unlink()


def test_choosing_needs_dev_examples_and_is_a_few_shot_method(directory, tmp_path):
    line = one_line_error(grid(directory, tmp_path / "g", "spot-best-of-2", "--dev-shots", "0"))
    assert "spot-best-of-2 keeps the candidate that scores best on dev examples: pass --dev-shots N" in line
    line = one_line_error(bmtpt("adapt", "--method", "spot-oracle", "--init", directory, "--tasks", "demo_nli",
                                "--out", tmp_path / "p.safetensors"))
    assert "bmtpt fewshot --methods spot-oracle" in line
    with pytest.raises(BmtptError, match="K is 1 or more"):
        method_named("spot-best-of-0")
