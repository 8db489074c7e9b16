"""The few-shot probe follows the paper's protocol (SPEC §4), and records it."""

from __future__ import annotations

import json

import pytest
import torch

import bmtpt_cli.adapter.batched as batched
import bmtpt_cli.experiments.fewshot as fewshot_module
from bmtpt_cli.data.registry import get_task
from bmtpt_cli.data.sampling import EpochBatches, kshot, kshot_per_class
from bmtpt_cli.errors import BmtptError
from clihelpers import FAST, bmtpt, starting_prompt


@pytest.fixture
def calls(monkeypatch):
    """Every cell the probe adapts (it runs the grid's cells, `adapt_cells`): its init, training
    subset, dev examples, config and batch sampler."""
    real, seen, samplers = fewshot_module.adapt_cells, [], []

    class Recorded(EpochBatches):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            samplers.append(self)

    def spy(runner, cells, **kwargs):
        first, starts = len(samplers), [starting_prompt(cell.init) for cell in cells]  # before training moves them
        results = real(runner, cells, **kwargs)
        for i, cell in enumerate(cells):
            seen.append({"init": starts[i], "train": cell.train, "dev": {cell.task.name: cell.dev} if cell.dev else {},
                         "config": cell.config, "batches": samplers[first + i]})
        return results

    monkeypatch.setattr(fewshot_module, "adapt_cells", spy)
    monkeypatch.setattr(batched, "EpochBatches", Recorded)
    return seen


def _probe(tmp_path, *extra):
    result = bmtpt("evaluate", "--shots", "4", "--tasks", "demo_rte", "--seeds", "0,1", "--steps", "2",
                   "--batch-size", "3", "--out", tmp_path / f"fs{len(list(tmp_path.iterdir()))}.json", *extra)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def particles(tmp_path):
    result = bmtpt("source", *FAST["source"], "--out", tmp_path / "p.safetensors")
    assert result.exit_code == 0, result.output
    return tmp_path / "p.safetensors"


def test_random_init_is_drawn_per_seed_and_subsets_are_shared_across_methods(tmp_path, calls, particles):
    _probe(tmp_path, "--init", "random")
    _probe(tmp_path, "--init", particles)
    random_0, random_1, file_0, file_1 = calls
    assert not torch.equal(random_0["init"], random_1["init"])  # each seed its own random init
    assert torch.equal(file_0["init"], file_1["init"])  # a file init is the same for every seed
    assert random_0["train"] == file_0["train"] and random_1["train"] == file_1["train"]  # same subset per seed
    assert random_0["train"] != random_1["train"]


def test_four_shots_take_a_third_of_the_learning_rates_and_batches_without_replacement(tmp_path, calls):
    _probe(tmp_path, "--init", "random", "--lr-shared", "0.3", "--lr-scales", "0.6", "--dev-shots", "0")
    config, batches = calls[0]["config"], calls[0]["batches"]
    assert config.lr_shared == pytest.approx(0.1) and config.lr_scales == pytest.approx(0.2)
    assert config.eval_every is None  # --dev-shots 0: the paper's rule, the last step is scored
    generator = torch.Generator().manual_seed(0)
    fresh = EpochBatches("demo_rte", calls[0]["train"], 3)
    drawn = [example for _ in range(4) for _, example in fresh(generator)]  # 12 slots = 3 epochs of 4
    for epoch in range(3):
        assert sorted(map(id, drawn[4 * epoch : 4 * epoch + 4])) == sorted(map(id, calls[0]["train"]))
    assert isinstance(batches, EpochBatches)
    report = json.loads(sorted(tmp_path.glob("fs*.json"))[-1].read_text())
    assert report["protocol"]["lr_factor"] == pytest.approx(1 / 3) and report["protocol"]["per"] == "task"
    assert report["protocol"]["selection"] == "last step"


def test_cells_are_scored_at_the_dev_selected_step_by_default(tmp_path, calls):
    _probe(tmp_path, "--init", "random")
    first = calls[0]
    assert len(first["dev"]["demo_rte"]) == 32 and first["config"].eval_every == 1  # 2 steps: every step evaluated
    report = json.loads(sorted(tmp_path.glob("fs*.json"))[-1].read_text())
    assert report["protocol"]["selection"].startswith("best of 2 dev evaluations on 32 validation examples")


def test_dev_selection_and_per_class_sampling_are_options(tmp_path, calls):
    _probe(tmp_path, "--init", "random", "--dev-shots", "8", "--shot-sampling", "class")
    first = calls[0]
    assert len(first["dev"]["demo_rte"]) == 8 and first["config"].eval_every == 1
    labels = [example.label for example in first["train"]]
    assert sorted(labels) == [0, 0, 0, 0, 1, 1, 1, 1]  # 4 of each of the two labels
    report = json.loads(sorted(tmp_path.glob("fs*.json"))[-1].read_text())
    assert report["protocol"]["per"] == "class" and "8 validation examples" in report["protocol"]["selection"]


def test_kshot_per_class_is_seeded_and_refuses_what_it_cannot_fill():
    examples = get_task("demo_rte").examples("train")
    assert kshot_per_class(examples, 3, seed=5) == kshot_per_class(examples, 3, seed=5)
    assert kshot_per_class(examples, 3, seed=5) != kshot_per_class(examples, 3, seed=6)
    with pytest.raises(BmtptError, match="fewer"):
        kshot_per_class(examples[:3], 3, seed=0)
    assert len(kshot(examples, 4, seed=0)) == 4


def test_a_seed_given_twice_is_refused(tmp_path):
    result = bmtpt("evaluate", "--shots", "4", "--init", "random", "--seeds", "0,0", "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "given twice" in result.stderr
