"""The cross-model projector (SPEC §5f): its network, its two objectives, gradients into its weights,
one projector for every particle, and a saved projector that reproduces the run that trained it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from bmtpt_cli.adapter.projection import (
    ProjectorConfig, distance_loss, task_loss_and_gradients, train_on_distance, train_on_tasks,
)
from bmtpt_cli.adapter.projector import new_projector, projector_from_file
from bmtpt_cli.artifacts import PARTICLES, common_metadata, load_particles, save_particles
from bmtpt_cli.artifacts.projector import ProjectorSpec, load_projector
from bmtpt_cli.data.registry import resolve_tasks
from bmtpt_cli.runner.model import load_frozen_t5
from bmtpt_cli.runner.prompts import sample_vocab_prompts
from bmtpt_cli.runner.runner import FrozenT5Runner
from clihelpers import bmtpt
from modelhelpers import WIDE_D_MODEL, save_small_t5
from reference import batch_loss

SPEC = ProjectorSpec("tiny", "wide", prompt_length=8, d_source=64, d_target=WIDE_D_MODEL, hidden=64, activation="tanh")


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A random-weight T5 of width 48 (tiny: 64) in a local directory."""
    return save_small_t5(tmp_path_factory.mktemp("models") / "wide")


@pytest.fixture(scope="module")
def wide_runner(wide):
    model, tokenizer = load_frozen_t5(str(wide))
    return FrozenT5Runner(model, tokenizer, max_source_length=128, max_target_length=16)


@pytest.fixture(scope="module")
def sentiment():
    (task,) = resolve_tasks("demo_sentiment")
    return task.examples("train")[:64]


def reference_loss(runner: FrozenT5Runner, prompt: torch.Tensor, examples) -> float:
    """Token-mean cross-entropy of the examples' targets under `prompt` `(l, d)`, computed apart from
    bmtpt's runner: the prompt concatenated before the token embeddings, Hugging Face's own loss."""
    model, tokenizer = runner.model, runner.tokenizer
    encoded = tokenizer([e.source for e in examples], max_length=128, truncation=True, padding=True, return_tensors="pt")
    labels = tokenizer([e.target for e in examples], padding=True, return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    count = len(examples)
    inputs = torch.cat([prompt.expand(count, -1, -1), model.get_input_embeddings()(encoded.input_ids)], dim=1)
    mask = torch.cat([torch.ones(count, prompt.shape[0], dtype=encoded.attention_mask.dtype), encoded.attention_mask], dim=1)
    with torch.no_grad():
        return float(model(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss)


def test_the_projector_is_two_linear_layers_and_a_layer_norm_over_the_target_width():
    projector = new_projector(SPEC, seed=0)
    prompts = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(0))
    hidden = torch.tanh(prompts.reshape(2, -1) @ projector.first.weight.T + projector.first.bias)  # (2, h)
    flat = (hidden @ projector.second.weight.T + projector.second.bias).reshape(2, 8, WIDE_D_MODEL)
    normalised = (flat - flat.mean(-1, keepdim=True)) / torch.sqrt(flat.var(-1, unbiased=False, keepdim=True) + 1e-5)
    expected = normalised * projector.norm.weight + projector.norm.bias
    assert torch.allclose(projector(prompts), expected, atol=1e-5)
    again = new_projector(SPEC, seed=0)  # seeded: the same initial weights
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), projector.state_dict().values()))
    leaky = new_projector(replace(SPEC, activation="leaky-relu"), seed=0)
    assert isinstance(leaky.activation, torch.nn.LeakyReLU)


def test_task_tuning_lowers_the_target_models_loss_below_a_random_target_prompt(wide_runner, sentiment):
    source = torch.randn(1, 8, 64, generator=torch.Generator().manual_seed(1))  # a tiny-width prompt
    projector = new_projector(SPEC, seed=0)
    untrained = reference_loss(wide_runner, projector.project(source)[0], sentiment[:32])
    random_prompt = sample_vocab_prompts(
        wide_runner.vocab_embeddings, count=1, length=8, candidate_ids=wide_runner.vocab_candidate_ids(5000),
        generator=torch.Generator().manual_seed(0),
    )[0]  # the target model's own unprojected random prompt (vocabulary draw, as --init random)
    random = reference_loss(wide_runner, random_prompt, sentiment[:32])
    config = ProjectorConfig(steps=30, batch_size=8, lr=0.005, seed=0, checkpoint_every=1000)
    trained = train_on_tasks(wide_runner, projector, source, {"demo_sentiment": [0]}, {"demo_sentiment": sentiment}, config)
    projected = trained.project(source)[0]
    loss = reference_loss(wide_runner, projected, sentiment[:32])
    assert loss < random - 0.5 and loss < untrained - 0.5, (loss, random, untrained)  # measured: 5.52 vs 6.44 and 6.43
    batch = wide_runner.encode([e.source for e in sentiment[:32]], [e.target for e in sentiment[:32]])
    with torch.no_grad():  # bmtpt's runner computes the same loss
        assert float(batch_loss(wide_runner, projected.expand(32, -1, -1), batch)) == pytest.approx(loss, rel=1e-4)


def test_the_distance_objective_reproduces_its_training_pairs():
    sources = torch.randn(3, 8, 64, generator=torch.Generator().manual_seed(2))
    # targets a layer norm can give: each token normalised, then one scale and shift per feature
    raw = torch.randn(3, 8, WIDE_D_MODEL, generator=torch.Generator().manual_seed(3))
    targets = torch.nn.functional.layer_norm(raw, (WIDE_D_MODEL,)) * 1.5 + 0.2
    projector = new_projector(SPEC, seed=0)
    with torch.no_grad():
        before = float(distance_loss(projector, sources, targets) / targets.pow(2).mean())
    config = ProjectorConfig(steps=200, batch_size=1, lr=0.005, seed=0, checkpoint_every=1000)
    trained = train_on_distance(projector, sources, targets, config)
    relative = float((trained.project(sources) - targets).pow(2).mean() / targets.pow(2).mean())
    assert relative < 0.01 < before, (relative, before)  # measured: 3.5e-4 after 200 steps


def test_gradients_reach_every_weight_of_the_projector(wide_runner, sentiment):
    """The reference's T5 projector set the prompt through `.weight.data`, so no gradient reached it (its issue #2)."""
    source = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(4))
    projector = new_projector(SPEC, seed=0)
    pairs = [("demo_sentiment", example) for example in sentiment[:4]]
    task_loss_and_gradients(wide_runner, projector, source, {"demo_sentiment": [0, 1]}, pairs)
    for name, parameter in projector.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
    start = {name: tensor.clone() for name, tensor in new_projector(SPEC, seed=0).state_dict().items()}
    config = ProjectorConfig(steps=1, batch_size=4, lr=0.005, seed=0, checkpoint_every=1000)
    stepped = train_on_tasks(wide_runner, new_projector(SPEC, seed=0), source, {"demo_sentiment": [0, 1]},
                             {"demo_sentiment": sentiment}, config)
    changed = {name for name, tensor in stepped.state_dict().items() if not torch.equal(tensor.cpu(), start[name])}
    assert changed == set(start), set(start) - changed  # both Linear layers and the layer norm moved


# ----------------------------------------------------------------------------- through `bmtpt project`
@pytest.fixture
def particles(tmp_path):
    """Three tiny-model particles of two demo tasks (what `bmtpt source` writes)."""
    path = tmp_path / "particles.safetensors"
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=64, prompt_length=8, config={})
    save_particles(path, torch.randn(3, 8, 64, generator=torch.Generator().manual_seed(5)) * 0.5,
                   tasks=["demo_sentiment", "demo_nli"], metadata=metadata)
    return path


def test_one_projector_maps_every_particle_and_a_saved_one_gives_the_same_output(particles, wide, tmp_path):
    out = tmp_path / "wide-particles.safetensors"
    result = bmtpt("project", "--prompts", particles, "--model", wide, "--steps", "3", "--batch-size", "4",
                   "--hidden", "32", "--out", out)
    assert result.exit_code == 0, result.output
    projected, metadata = load_particles(out)
    assert projected.shape == (3, 8, WIDE_D_MODEL)
    assert metadata["bmtpt.model"] == str(wide) and metadata["bmtpt.source_model"] == "tiny"
    assert metadata["bmtpt.tasks"] == "demo_sentiment,demo_nli" and metadata["bmtpt.projector_objective"] == "task"
    saved_at = tmp_path / "wide-particles.safetensors.projector.safetensors"
    assert metadata["bmtpt.projector"] == str(saved_at)
    saved = load_projector(saved_at)
    assert (saved.spec.source_model, saved.spec.target_model, saved.spec.hidden) == ("tiny", str(wide), 32)
    assert saved.tasks == ["demo_sentiment", "demo_nli"] and saved.objective == "task"
    projector = projector_from_file(saved)
    original, _ = load_particles(particles)
    for m in range(3):  # each particle alone through the saved projector, by hand
        with torch.no_grad():
            assert torch.allclose(projector(original[m : m + 1])[0], projected[m], atol=1e-6), m
    assert not torch.allclose(projected[0], projected[1])

    again = tmp_path / "again.safetensors"
    applied = bmtpt("project", "--prompts", particles, "--projector", saved_at, "--out", again)
    assert applied.exit_code == 0, applied.output
    reapplied, again_metadata = load_particles(again)
    assert torch.equal(reapplied, projected)  # exactly the trained run's output
    assert again_metadata["bmtpt.model"] == str(wide) and again_metadata["bmtpt.projector"] == str(saved_at)
    with safe_open(str(saved_at), framework="pt") as handle:
        recorded = handle.metadata()
    assert recorded["bmtpt.d_source"] == "64" and recorded["bmtpt.d_target"] == str(WIDE_D_MODEL)
    assert recorded["bmtpt.activation"] == "tanh" and recorded["bmtpt.steps"] == "3"


def test_a_resumed_projector_run_continues_bit_for_bit(wide_runner, sentiment, tmp_path):
    from bmtpt_cli.runtime.loop import RunFiles

    source = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(6))
    data, serves = {"demo_sentiment": sentiment}, {"demo_sentiment": [0, 1]}
    config = ProjectorConfig(steps=4, batch_size=4, lr=0.005, seed=0, checkpoint_every=2)
    straight = train_on_tasks(wide_runner, new_projector(SPEC, seed=0), source, serves, data, config)
    checkpoint, log = tmp_path / "p.ckpt", tmp_path / "p.log.jsonl"
    fingerprint = {**replace(config, steps=2).fingerprint(), "objective": "task"}
    train_on_tasks(wide_runner, new_projector(SPEC, seed=0), source, serves, data, replace(config, steps=2),
                   files=RunFiles(checkpoint, log, False, fingerprint))
    resumed = train_on_tasks(wide_runner, new_projector(SPEC, seed=1), source, serves, data, config,  # weights from the checkpoint
                             files=RunFiles(checkpoint, log, True, {**fingerprint, "steps": 4}))
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
