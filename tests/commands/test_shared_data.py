"""The chain on the real GLUE/SuperGLUE files in ../shared/data, read in place (skipped when absent)."""

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from clihelpers import bmtpt

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SHARED_DATA / "glue").is_dir(), reason="../shared/data is not here"),
]
FAST = ["--data-dir", SHARED_DATA, "--max-source-length", "128"]


def test_source_adapt_evaluate_on_real_glue_and_superglue_files(tmp_path):
    particles, prompts, results = tmp_path / "p.safetensors", tmp_path / "t.safetensors", tmp_path / "r.json"
    source = bmtpt("source", *FAST, "--tasks", "rte,mrpc,stsb", "--steps", "3", "--particles", "2", "--out", particles)
    assert source.exit_code == 0, source.output
    adapt = bmtpt("adapt", *FAST, "--tasks", "rte,cb", "--init", particles, "--steps", "2", "--eval-every", "2",
                  "--batch-size", "4", "--out", prompts)
    assert adapt.exit_code == 0, adapt.output
    with safe_open(str(prompts), framework="pt") as handle:
        dev = json.loads(handle.metadata()["bmtpt.dev_metrics"])
    assert set(dev) == {"rte", "cb"}
    evaluate = bmtpt("evaluate", *FAST, "--prompts", prompts, "--out", results)
    assert evaluate.exit_code == 0, evaluate.output
    rows = {row["task"]: row for row in json.loads(results.read_text())["results"]}
    assert rows["rte"]["examples"] == 139 and rows["cb"]["examples"] == 28  # the second halves of 277 and 56
    assert set(rows["cb"]["metrics"]) == {"accuracy", "macro_f1"}
