"""The third toy world on the shipped toy3 T5 (docs/toyworld.md, "The third toy world"): property 4 (one prompt
trained on all twelve sources at once holds their operations, because each family's field tells the sources apart)
and the learning test (prompt tuning learns an unseen target; the multi-task prompt transfers to it at k = 16)."""

import json
import statistics

import pytest

from bmtpt_cli.artifacts.native import load_particles
from bmtpt_cli.data.toyworld3 import SOURCE_NAMES, TOY3_TASKS
from bmtpt_cli.runner.model import load_frozen_t5
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.scoring.score import score_task
from clihelpers import bmtpt

ABOVE = 0.6
# Three source runs (posterior seeds 11, 12, 13, 300 steps at lr 0.3) scored 0.92-0.96 on average over the twelve
# sources' test splits, all twelve above 0.6, the lowest task 0.78 (docs/toyworld.md). A run at lr 0.3 is chaotic,
# so another CPU gives another draw of that spread: the bounds sit well below its lowest draw, at 100 examples per
# task.
MEAN_AT_LEAST = 0.80
ABOVE_AT_LEAST = 10
TARGET = "toy3_animal_yes_shifted"
SEEDS = "0-2"
# k = 16, 30 steps, 10 seeds (docs/toyworld.md): prompt tuning from random init at the paper's learning rates scored
# 0.85-1.00 on this target (median 0.99), the multi-task prompt tuned at the preset's 0.93-1.00 over three posteriors;
# a random prompt scores 0.48-0.50 and no prompt 0.500. The medians of three seeds are held to 0.75 and 0.85.
PT_MEDIAN_AT_LEAST = 0.75
TRANSFER_MEDIAN_AT_LEAST = 0.85


@pytest.fixture(scope="module")
def multitask_prompt(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy3") / "m1.safetensors"
    result = bmtpt("source", "--preset", "toyworld3", "--particles", "1", "--seed", "11", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def _k16_scores(tmp_path, init, *extra) -> list[float]:
    out = tmp_path / f"probe-{len(list(tmp_path.iterdir()))}.json"
    result = bmtpt("evaluate", "--preset", "toyworld3", "--shots", "16", "--init", init, "--tasks", TARGET,
                   "--seeds", SEEDS, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["results"]
    assert row["task"] == TARGET and row["examples"] == 400 and len(row["per_seed"]) == 3
    return list(row["per_seed"].values())


@pytest.mark.integration
def test_a_prompt_trained_on_all_sources_solves_most_of_them_zero_shot(multitask_prompt):
    particles, _ = load_particles(multitask_prompt)
    model, tokenizer = load_frozen_t5("toy3")
    runner = FrozenT5Runner(model, tokenizer, max_source_length=64, max_target_length=4)
    scores = [score_task(runner, particles[0], TOY3_TASKS[name], TOY3_TASKS[name].examples("test", taskless=True)[:100]).value
              for name in SOURCE_NAMES]
    assert statistics.fmean(scores) >= MEAN_AT_LEAST and sum(s > ABOVE for s in scores) >= ABOVE_AT_LEAST, scores


@pytest.mark.integration
def test_prompt_tuning_learns_an_unseen_target_and_the_multitask_prompt_transfers(tmp_path, multitask_prompt):
    tuned = _k16_scores(tmp_path, "random", "--lr-shared", "0.3", "--lr-scales", "0.4")
    assert statistics.median(tuned) >= PT_MEDIAN_AT_LEAST, tuned
    transferred = _k16_scores(tmp_path, str(multitask_prompt))  # the preset's learning rates, a tenth of those
    assert statistics.median(transferred) >= TRANSFER_MEDIAN_AT_LEAST, transferred
