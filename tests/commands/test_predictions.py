"""`bmtpt evaluate --predictions` (issue 26, Small): every scored example's prediction as JSON lines
beside the results, with each label's score under rank scoring, consistent with the reported metrics."""

from __future__ import annotations

import json

import pytest

from bmtpt_cli.runtime.outputs import sidecar
from clihelpers import FAST, bmtpt, listing


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    root = tmp_path_factory.mktemp("predictions")
    assert bmtpt("source", *FAST["source"], "--steps", "2", "--out", root / "p.safetensors").exit_code == 0
    result = bmtpt("adapt", *FAST["adapt"], "--tasks", "demo_sentiment,demo_nli", "--init", root / "p.safetensors",
                   "--out", root / "prompts.safetensors")
    assert result.exit_code == 0, result.output
    return root / "prompts.safetensors"


def test_predictions_file_has_one_record_per_example_matching_the_metrics(prompts, tmp_path):
    out = tmp_path / "results.json"
    result = bmtpt("evaluate", "--prompts", prompts, "--predictions", "--out", out)
    assert result.exit_code == 0, result.output
    path = sidecar(out, ".predictions.jsonl")
    assert str(path) in result.stdout.replace("\n", "")  # said (rich may wrap the long path)
    report = json.loads(out.read_text())
    assert report["predictions"] == str(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for row in report["results"]:
        mine = [r for r in records if r["task"] == row["task"]]
        assert [r["index"] for r in mine] == list(range(row["examples"]))
        assert row["metric"] == "accuracy" and row["decode"] == "rank"
        assert sum(r["prediction"] == r["gold"] for r in mine) / len(mine) == pytest.approx(row["value"])
        for r in mine:
            assert set(r) >= {"task", "index", "input", "gold", "prediction", "scores"}
            assert r["prediction"] == max(r["scores"], key=r["scores"].get)  # the best-scoring label
    assert listing(tmp_path) == sorted([out.name, path.name])  # no temporary file left behind


def test_without_predictions_no_file_is_written(prompts, tmp_path):
    out = tmp_path / "results.json"
    assert bmtpt("evaluate", "--prompts", prompts, "--out", out).exit_code == 0
    assert listing(tmp_path) == [out.name]


def test_predictions_with_the_few_shot_probe_is_refused_in_one_line(prompts, tmp_path):
    result = bmtpt("evaluate", "--shots", "4", "--init", prompts, "--predictions", "--out", tmp_path / "r.json")
    assert result.exit_code == 2
    assert "--predictions" in result.stderr and "\n" not in result.stderr.strip()
