"""Learning is visible on the toy world: prompt tuning on a target the toy model never saw beats chance."""

import json
import statistics

import pytest

from bmtpt_cli.data.toyworld import SOURCE_NAMES, TARGET_NAMES
from clihelpers import bmtpt

TARGET = "toy_animal_right"
CHANCE = 0.5
MARGIN = 0.25
SEEDS = (0, 1, 2)
MORE_SEEDS = (3, 4)
# Why this protocol holds on any CPU and thread count (docs/toyworld.md, "The learning test"): at lr 0.3 a
# single run is chaotic: float round-off of another CPU (emulated by scaling the frozen weights by
# 1 + 1e-6·N(0, 1), scripts/learning_test_study.py --perturb 1e-6) turns a run solved at 0.935 into one stuck
# at 0.67, so the old test (one seed, 200 steps, the last prompt) failed on 3 of 10 perturbed seeds, as it
# did on an AMD machine. With 400 steps and the prompt kept by dev accuracy every 50 steps, 1 of 20
# perturbed seeds stayed stuck (0.69; the others 0.80-1.00). So the test passes when 2 of 3 seeds clear the
# bound, and otherwise when 3 of 5 do: with 1 run in 20 stuck it fails about once in 1,200 machines. A model
# that stopped learning scores like a random prompt (0.61 ± 0.11, up to 0.87) and passes about 3 times in 100.


def test_tasks_command_lists_the_toy_world_with_its_family():
    result = bmtpt("tasks", "--benchmark", "toyworld", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == [*SOURCE_NAMES, *TARGET_NAMES]
    assert {row["benchmark"] for row in rows} == {"toyworld"}
    assert all(row["labels"] and row["split"] == "own (4000/200/400)" for row in rows)


def _tuned_test_accuracy(folder, seed: int) -> float:
    prompts, results = folder / f"prompts-{seed}.safetensors", folder / f"results-{seed}.json"
    adapt = bmtpt("adapt", "--preset", "toyworld", "--init", "random", "--tasks", TARGET, "--steps", "400",
                  "--eval-every", "50", "--checkpoint-every", "400", "--warmup-steps", "10", "--seed", str(seed),
                  "--out", prompts)
    assert adapt.exit_code == 0, adapt.output
    evaluate = bmtpt("evaluate", "--preset", "toyworld", "--prompts", prompts, "--out", results)
    assert evaluate.exit_code == 0, evaluate.output
    (row,) = json.loads(results.read_text())["results"]
    assert row["task"] == TARGET and row["examples"] == 400
    return row["value"]


@pytest.mark.integration
def test_prompt_tuning_on_an_unseen_target_beats_chance(tmp_path):
    scores = [_tuned_test_accuracy(tmp_path, seed) for seed in SEEDS]
    if statistics.median(scores) < CHANCE + MARGIN:  # one stuck run among three: two more seeds decide
        scores += [_tuned_test_accuracy(tmp_path, seed) for seed in MORE_SEEDS]
    assert statistics.median(scores) >= CHANCE + MARGIN, scores
