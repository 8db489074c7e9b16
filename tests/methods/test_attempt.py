"""ATTEMPT (#22): each input's prompt is the reference code's attention mix of frozen source prompts and
a trained target prompt; it trains, saves, loads, scores and runs in the grid; bad sources are refused."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bmtpt_cli.artifacts import PROMPTS, common_metadata, load_prompts, save_prompts
from bmtpt_cli.methods.attempt import AttemptPrompts, InputPooler, load
from clihelpers import bmtpt, listing, one_line_error

D, L, S = 64, 4, 3  # the tiny model's width; prompt length; source prompts


def _module(runner, seed=0):
    generator = torch.Generator().manual_seed(seed)
    sources = torch.randn(S, L, D, generator=generator)
    target = torch.randn(L, D, generator=generator)
    return AttemptPrompts(sources, target, ["demo_rte", "demo_nli"], InputPooler(runner), torch.Generator().manual_seed(seed))


def _by_hand(runner, module, texts, task_ids):
    """The reference formula in float64, from the tokenizer and the embedding table directly."""
    table = runner.vocab_embeddings.detach().double()
    out = []
    for text, k in zip(texts, task_ids):
        ids = runner.tokenizer(text, truncation=True, max_length=runner.max_source_length).input_ids
        x = table[ids].max(dim=0).values  # (d,)
        down, up = module.down.weight.detach().double(), module.up.weight.detach().double()
        z = up @ torch.nn.functional.silu(down @ x)
        h = (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + 1e-5)  # LayerNorm, weight 1, bias 0
        prompts = [*module.sources.double(), module.targets[k].detach().double()]
        scores = torch.stack([p.max(dim=0).values @ h for p in prompts]) / (D * math.e)
        weights = torch.softmax(scores, dim=0)
        out.append(sum(w * p for w, p in zip(weights, prompts)) + prompts[-1])
    return torch.stack(out), weights


def test_instance_prompts_equal_the_reference_formula_in_float64(runner):
    module = _module(runner)
    texts = ["a short input", "a much longer input, with more tokens in it than the first one", "x"]
    task_ids = [0, 1, 0]
    got = module(task_ids, texts)
    want, _ = _by_hand(runner, module, texts, task_ids)
    assert got.shape == (3, L, D)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0], got[2])  # the prompt depends on the input
    torch.testing.assert_close(module([0], texts[2:])[0], got[2])  # and not on the batch it is in (no padding pooled)


def test_attention_sums_to_one_over_the_sources_and_the_target(runner):
    module = _module(runner, seed=1)
    weights = module.attention(module.pooler(["one input", "another"]), [0, 1])
    assert weights.shape == (2, S + 1)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    assert (weights > 0).all()


def test_gradients_reach_only_the_target_prompts_and_the_sub_network(runner):
    module = _module(runner, seed=2)
    module([0, 0], ["first input", "second input"]).pow(2).sum().backward()
    assert module.targets[0].grad is not None and module.targets[0].grad.abs().sum() > 0
    assert module.targets[1].grad is None  # task 1 was not in the batch
    assert module.down.weight.grad.abs().sum() > 0 and module.up.weight.grad.abs().sum() > 0
    assert module.norm.weight.grad is None and module.norm.bias.grad is None  # frozen, as the reference
    assert not module.sources.requires_grad
    trained = {id(p) for group in module.parameter_groups(0.3, 0.4) for p in group["params"]}
    assert trained == {id(module.targets[0]), id(module.targets[1]), id(module.down.weight), id(module.up.weight)}


def _per_task_dir(directory, tasks, *, width=D, length=L):
    directory.mkdir()
    generator = torch.Generator().manual_seed(3)
    for task in tasks:
        metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=width, prompt_length=length, config={})
        save_prompts(directory / f"{task}.safetensors", torch.randn(length, width, generator=generator),
                     {task: (torch.ones(length), torch.ones(width))}, metadata=metadata)
    return directory


ADAPT = ["adapt", "--method", "attempt", "--steps", "3", "--eval-every", "1", "--batch-size", "4", "--warmup-steps", "0"]


def test_adapt_saves_a_file_that_loads_and_scores_as_the_trained_module(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _per_task_dir(tmp_path / "src", ["demo_review", "demo_sentiment", "demo_topic", "demo_rte"])
    result = bmtpt(*ADAPT, "--init", "src", "--tasks", "demo_rte,demo_nli", "--out", "at.safetensors")
    assert result.exit_code == 0, result.output
    artifact = load_prompts(tmp_path / "at.safetensors")
    assert artifact.metadata["bmtpt.method"] == "attempt" and artifact.input_dependent
    assert artifact.metadata["bmtpt.prior"] == "none: method attempt has no prior"
    details = json.loads(artifact.metadata["bmtpt.init_details"])
    assert details["sources"] == ["demo_review", "demo_sentiment", "demo_topic"] and details["left_out"] == ["demo_rte"]
    module = load(artifact, runner)
    assert len(module.targets) == 2  # one target prompt per task, one shared sub-network
    torch.testing.assert_close(module.sources, torch.stack([load_prompts(tmp_path / "src" / f"{t}.safetensors").shared
                                                            for t in details["sources"]]))
    evaluate = bmtpt("evaluate", "--prompts", "at.safetensors", "--out", "results.json")
    assert evaluate.exit_code == 0, evaluate.output
    scored = {r["task"]: r["value"] for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    assert set(scored) == {"demo_rte", "demo_nli"}
    error = one_line_error(bmtpt("adapt", "--init", "at.safetensors", "--tasks", "demo_rte", "--out", "x.safetensors"))
    assert "depend on each input" in error and not (tmp_path / "x.safetensors").exists()
    assert "no serving format" in one_line_error(bmtpt("export", "--prompts", "at.safetensors", "--out", "export"))


def test_attempt_is_a_fewshot_row_beside_pt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _per_task_dir(tmp_path / "src", ["demo_review", "demo_sentiment", "demo_topic"])
    result = bmtpt("fewshot", "--methods", "pt,attempt", "--source-prompts", "src", "--tasks", "demo_rte", "--shots", "4",
                   "--seeds", "0-1", "--steps", "2", "--batch-size", "4", "--out", "grid")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "grid" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["method"], r["seed"], r["prior"]) for r in rows) == [
        ("attempt", 0, False), ("attempt", 1, False), ("pt", 0, False), ("pt", 1, False)]


@pytest.mark.parametrize("case", ["missing", "one prompt", "other width"])
def test_bad_sources_are_one_line_and_nothing_is_written(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if case == "one prompt":
        _per_task_dir(tmp_path / "src", ["demo_review", "demo_rte"])  # demo_rte is the target's own
    elif case == "other width":
        _per_task_dir(tmp_path / "src", ["demo_review", "demo_topic"], width=32)
    before = listing(tmp_path)
    error = one_line_error(bmtpt(*ADAPT, "--init", "src", "--tasks", "demo_rte", "--out", "at.safetensors"))
    words = {"missing": "not a directory", "one prompt": "mixes several source prompts", "other width": "d_model"}[case]
    assert words in error, error
    assert listing(tmp_path) == before
