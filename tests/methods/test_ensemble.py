"""bmtpt-ensemble (#25): M target prompts, one from each particle, trained in shared passes (each member
exactly its own run) and predicting by their averaged label distribution; saved, loaded, exported
(as the members' mean, with a warning) and run in the grid."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bmtpt_cli.adapter.batched import CellSpec, adapt_cells
from bmtpt_cli.adapter.prompt import TargetPrompts
from bmtpt_cli.adapter.train import adapt
from bmtpt_cli.artifacts import PARTICLES, common_metadata, load_prompts, save_particles
from bmtpt_cli.data.registry import get_task
from bmtpt_cli.data.sampling import EpochBatches, kshot
from bmtpt_cli.methods.ensemble import EnsemblePrompts, load
from bmtpt_cli.scoring.calibration import calibration, label_distribution
from bmtpt_cli.scoring.score import PromptEnsemble, plurality, rank, score_task
from clihelpers import bmtpt, listing, one_line_error
from configs import adapt_config

LENGTH, M = 6, 3


@pytest.fixture(scope="module")
def toy():
    """The shipped toy T5 (label words with real scores) and toy_mood_true's splits."""
    from bmtpt_cli.runner.model import load_frozen_t5
    from bmtpt_cli.runner.runner import FrozenT5Runner

    torch.set_num_threads(1)
    model, tokenizer = load_frozen_t5("toy")
    task = get_task("toy_mood_true")
    splits = {split: task.examples(split, taskless=True) for split in ("train", "validation", "test")}
    return FrozenT5Runner(model, tokenizer, max_source_length=128, max_target_length=16), task, splits, (model, tokenizer)


def _starts(width, seed=0):
    return 0.5 * torch.randn(M, LENGTH, width, generator=torch.Generator().manual_seed(seed))


def _config(**overrides):
    """A short run at learning rates low enough that float32 round-off stays round-off (at the paper's
    0.3, Adam's first steps turn a 1e-6 difference in a near-zero gradient into a different path)."""
    base = dict(steps=4, batch_size=6, warmup_steps=1, sigma=3.0, eval_every=None, seed=0, lr_shared=0.03, lr_scales=0.03)
    return adapt_config(**{**base, **overrides})


def _close(got: torch.Tensor, want: torch.Tensor):
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_each_member_trains_as_its_own_run(toy):
    """The ensemble's step backpropagates the sum of the members' losses: member m ends where `adapt` of
    particle m alone (same batches, prior toward the mean) ends."""
    runner, task, splits, _ = toy
    starts, config = _starts(runner.d_model), _config()
    centre = starts.mean(dim=0)
    train = {task.name: kshot(splits["train"], 24, 0)}
    together = adapt(runner, [task], train, {}, EnsemblePrompts(starts, [task.name]), config, prior_mean=centre)
    for m in range(M):
        alone = adapt(runner, [task], train, {}, TargetPrompts(starts[m], [task.name]), config, prior_mean=centre)
        member = together.prompts.members[m]
        _close(member.shared, alone.prompts.shared)
        _close(member.row_scales[0], alone.prompts.row_scales[0])
        _close(member.col_scales[0], alone.prompts.col_scales[0])
    assert not torch.allclose(together.prompts.members[0].shared, starts[0])  # it trained


@pytest.mark.parametrize("chunk", [None, 5], ids=["one-pass", "chunked"])
def test_each_member_gets_the_gradient_of_its_own_loss(toy, chunk):
    """One step's gradient of every member equals its own run's, whether the M·B rows go in one pass or
    in chunks of 5 (which cut across members); the loss reported is the members' mean."""
    from bmtpt_cli.adapter.train import _loss_and_gradients
    from bmtpt_cli.runner.runner import FrozenT5Runner
    from bmtpt_cli.runtime.distributed import SINGLE

    _, task, splits, (model, tokenizer) = toy
    runner = FrozenT5Runner(model, tokenizer, max_source_length=128, max_target_length=16, chunk_sequences=chunk)
    starts, config = _starts(runner.d_model, seed=3), _config()
    centre, pairs = starts.mean(dim=0), [(task.name, e) for e in kshot(splits["train"], 6, 3)]
    ensemble = EnsemblePrompts(starts, [task.name])
    loss, prior = _loss_and_gradients(runner, ensemble, pairs, {task.name: 0}, centre, config, SINGLE)
    assert runner.last_plan.chunked == (chunk is not None)
    losses, priors = [], []
    for m, member in enumerate(ensemble.members):
        alone = TargetPrompts(starts[m], [task.name])
        own_loss, own_prior = _loss_and_gradients(runner, alone, pairs, {task.name: 0}, centre, config, SINGLE)
        losses.append(own_loss)
        priors.append(own_prior)
        for got, want in zip(member.parameters(), alone.parameters()):
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, torch.stack(losses).mean())
    torch.testing.assert_close(prior, torch.stack(priors).mean())


def test_an_ensemble_cell_in_a_group_is_its_run_alone(toy):
    runner, task, splits, _ = toy
    starts, config = _starts(runner.d_model, seed=1), _config(eval_every=2)
    subset, dev = kshot(splits["train"], 8, 1), kshot(splits["validation"], 12, 1)
    centre = starts.mean(dim=0)
    alone = adapt(runner, [task], {task.name: subset}, {task.name: dev}, EnsemblePrompts(starts, [task.name]), config,
                  prior_mean=centre, batches=EpochBatches(task.name, subset, config.batch_size))
    other = CellSpec(task, kshot(splits["train"], 8, 2), dev, starts[0].clone(), None, _config(seed=2, eval_every=2))
    ensemble = CellSpec(task, subset, dev, EnsemblePrompts(starts, [task.name]), centre, config)
    _, grouped = adapt_cells(runner, [other, ensemble])
    assert grouped.best_step == alone.best_step and grouped.dev_metrics == alone.dev_metrics
    for got, want in zip(grouped.prompts.state_dict().values(), alone.prompts.state_dict().values()):
        _close(got, want)


def test_the_averaged_distribution_is_the_mean_of_the_members_scored_one_by_one(toy):
    runner, task, splits, _ = toy
    prompts = _starts(runner.d_model, seed=4)
    examples = splits["test"][:40]
    labels = task.verbalisers("words")
    scores = []
    predictions = rank(runner, PromptEnsemble(prompts), examples, labels, scores_out=scores)
    members = []
    for prompt in prompts:
        own = []
        rank(runner, prompt, examples, labels, scores_out=own)
        members.append(own)
    for i, example_scores in enumerate(scores):
        by_hand = {c: math.fsum(label_distribution(member[i])[c] for member in members) / M for c in labels}
        got = label_distribution(example_scores)
        assert got == pytest.approx(by_hand, abs=1e-6)  # the members' scores pass through float32 passes
        assert predictions[i] == max(by_hand, key=by_hand.get)
    score = score_task(runner, PromptEnsemble(prompts), task, examples)
    want = calibration([label_distribution(s) for s in scores], [e.target for e in examples])
    assert score.calibration == pytest.approx(want)
    assert len(set(predictions)) > 1  # the toy model's label words really compete


def test_an_ensemble_of_identical_prompts_is_the_single_prompt(toy):
    runner, task, splits, _ = toy
    prompt = _starts(runner.d_model, seed=5)[0]
    examples = splits["test"][:30]
    single = score_task(runner, prompt, task, examples)
    ensemble = score_task(runner, PromptEnsemble(prompt.expand(M, -1, -1)), task, examples)
    assert ensemble.value == single.value and ensemble.metrics == single.metrics
    assert ensemble.calibration == pytest.approx(single.calibration, rel=1e-9, abs=1e-12)


def test_generation_takes_the_most_common_text_and_ties_go_to_the_first_member():
    assert plurality(["yes", "no", "no"]) == "no"
    assert plurality(["no", "yes", "maybe", "yes", "no"]) == "no"
    assert plurality(["a", "b", "c"]) == "a"


def _tiny_particles(path, count=M):
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=4, config={})
    save_particles(path, 0.3 * torch.randn(count, 4, 64, generator=torch.Generator().manual_seed(7)), tasks=["demo_nli"],
                   metadata=metadata)


ADAPT = ["adapt", "--method", "bmtpt-ensemble", "--steps", "2", "--eval-every", "1", "--batch-size", "4", "--warmup-steps", "0"]


def test_adapt_evaluate_export_and_fewshot(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tiny_particles(tmp_path / "p.safetensors")
    result = bmtpt(*ADAPT, "--init", "p.safetensors", "--tasks", "demo_rte,demo_sentiment", "--out", "ens.safetensors")
    assert result.exit_code == 0, result.output
    artifact = load_prompts(tmp_path / "ens.safetensors")
    assert artifact.metadata["bmtpt.method"] == "bmtpt-ensemble" and artifact.members == M
    assert json.loads(artifact.metadata["bmtpt.init_details"])["members"] == M
    module = load(artifact, runner)
    for k, task in enumerate(artifact.tasks):  # the file's one prompt per task is the members' mean
        torch.testing.assert_close(artifact.prompt(task), module.scorer(k).prompts.mean(dim=0))
    assert not torch.equal(module.members[0].shared, module.members[1].shared)
    evaluate = bmtpt("evaluate", "--prompts", "ens.safetensors", "--out", "results.json")
    assert evaluate.exit_code == 0, evaluate.output
    reported = {r["task"]: r for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    rte = get_task("demo_rte")
    want = score_task(runner, module.scorer(0), rte, rte.examples("test"))
    assert reported["demo_rte"]["value"] == want.value  # the command's runner chunks otherwise: round-off only
    assert reported["demo_rte"]["calibration"] == pytest.approx(want.calibration, rel=1e-3)

    exported = bmtpt("export", "--prompts", "ens.safetensors", "--format", "safetensors", "--out", "export")
    assert exported.exit_code == 0 and "not the ensemble" in exported.stderr
    from safetensors.torch import load_file

    torch.testing.assert_close(load_file(tmp_path / "export" / "demo_rte.safetensors")["prompt_embeddings"],
                               artifact.prompt("demo_rte"))
    assert "not the ensemble" in (tmp_path / "export" / "README.md").read_text()
    before = listing(tmp_path)
    assert "drop --multitask" in one_line_error(bmtpt("export", "--prompts", "ens.safetensors", "--multitask", "--out", "mt"))
    assert listing(tmp_path) == before

    grid = bmtpt("fewshot", "--methods", "bmtpt,bmtpt-ensemble", "--particles", "p.safetensors", "--tasks", "demo_rte",
                 "--shots", "4", "--seeds", "0-0", "--steps", "2", "--batch-size", "4", "--out", "grid")
    assert grid.exit_code == 0, grid.output
    rows = [json.loads(line) for line in (tmp_path / "grid" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == ["bmtpt", "bmtpt-ensemble"]
    assert all("ece" in r["calibration"] for r in rows), rows


def test_a_one_particle_file_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _tiny_particles(tmp_path / "one.safetensors", count=1)
    before = listing(tmp_path)
    error = one_line_error(bmtpt(*ADAPT, "--init", "one.safetensors", "--tasks", "demo_rte", "--out", "e.safetensors"))
    assert "M ≥ 2" in error or "one-particle" in error, error
    assert listing(tmp_path) == before
