"""`bmtpt fewshot` as a comparison: several source posteriors per method crossed with the seeds, and
each method's paired difference against the baseline with its intervals, checked against the rows."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles
from clihelpers import bmtpt

TOY_D = 128  # the shipped toy model: trained cells differ from seed to seed, so the pairs do
FAST = ["--steps", "1", "--batch-size", "4", "--prompt-length", "8", "--dev-shots", "4"]


def _particles(path, count, seed):
    particles = torch.randn(count, 8, TOY_D, generator=torch.Generator().manual_seed(seed))
    metadata = common_metadata(kind=PARTICLES, model="toy", d_model=TOY_D, prompt_length=8, config={})
    save_particles(path, particles, tasks=["toy_mood_on"], metadata=metadata)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """pt and bmtpt from two posteriors × 3 seeds on one task at k = 4."""
    root = tmp_path_factory.mktemp("comparison")
    _particles(root / "a.safetensors", 3, seed=1)
    _particles(root / "b.safetensors", 3, seed=2)
    result = bmtpt("fewshot", *FAST, "--tasks", "toy_mood_true", "--methods", "pt,bmtpt", "--shots", "4", "--seeds", "3",
                   "--particles", f"{root / 'a.safetensors'},{root / 'b.safetensors'}", "--solved-at", "0.5",
                   "--out", root / "out")
    assert result.exit_code == 0, result.output
    return root


def test_each_posterior_is_crossed_with_every_seed(comparison):
    rows = [json.loads(line) for line in (comparison / "out" / "results.jsonl").read_text().splitlines()]
    cells = {(r["method"], r["source"], r["seed"]): r for r in rows}
    assert set(cells) == {("pt", 0, s) for s in range(3)} | {("bmtpt", j, s) for j in (0, 1) for s in range(3)}
    assert {cells[("bmtpt", j, 0)]["init"] for j in (0, 1)} == {str(comparison / "a.safetensors"), str(comparison / "b.safetensors")}
    for seed in range(3):  # one k-shot subset per seed, whatever the method or posterior
        assert len({cells[key]["subset_sha256"] for key in cells if key[2] == seed}) == 1


def test_paired_differences_and_intervals_match_the_rows(comparison):
    scipy_stats = pytest.importorskip("scipy.stats")
    out = comparison / "out"
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    value = {(r["method"], r["source"], r["seed"]): 100 * r["value"] for r in rows}
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"] == "pt"
    (entry,) = [c for c in report["comparisons"] if c["column"] == "toy_mood_true"]
    expected = [value[("bmtpt", j, s)] - value[("pt", 0, s)] for j in (0, 1) for s in range(3)]
    assert [p["difference"] for p in entry["pairs"]] == pytest.approx(expected)
    assert [p["source"] for p in entry["pairs"]] == [0, 0, 0, 1, 1, 1] and entry["clusters"] == 2
    assert entry["mean"] == pytest.approx(statistics.fmean(expected))
    assert statistics.pstdev(expected) > 0  # a test of the interval, not of zero-width ones
    low, high = scipy_stats.t.interval(0.95, len(expected) - 1, loc=statistics.fmean(expected), scale=scipy_stats.sem(expected))
    assert (entry["t"]["low"], entry["t"]["high"]) == pytest.approx((low, high))
    assert entry["bootstrap"]["low"] <= entry["mean"] <= entry["bootstrap"]["high"]
    excludes = [entry[name]["low"] > 0 or entry[name]["high"] < 0 for name in ("t", "bootstrap")]
    assert entry["separated"] == all(excludes)
    table = (out / "table.md").read_text()
    assert "Paired difference against pt" in table and "| bmtpt | " in table
    assert "seeds 0-2 × source posteriors (bmtpt: 2)" in table and "best of" in table and "machine:" in table
    (block,) = report["table"]["blocks"]
    bmtpt_cell = next(r for r in block["rows"] if r["method"] == "bmtpt")["cells"]["toy_mood_true"]
    assert bmtpt_cell["n"] == 6 and set(bmtpt_cell["per_seed"]) == {f"{s}@{j}" for s in range(3) for j in (0, 1)}
    solved = [v >= 50 for (m, _, _), v in value.items() if m == "bmtpt"]
    assert bmtpt_cell["solved"] == pytest.approx(sum(solved) / len(solved))


def test_a_baseline_outside_the_methods_and_unpairable_posteriors_are_refused(tmp_path):
    _particles(tmp_path / "a.safetensors", 3, seed=1)
    _particles(tmp_path / "b.safetensors", 3, seed=2)
    _particles(tmp_path / "m1.safetensors", 1, seed=3)
    _particles(tmp_path / "m2.safetensors", 1, seed=4)
    _particles(tmp_path / "m3.safetensors", 1, seed=5)
    common = [*FAST, "--tasks", "toy_mood_true", "--shots", "4", "--seeds", "2"]
    result = bmtpt("fewshot", *common, "--methods", "pt,bmtpt", "--baseline", "multitask",
                   "--particles", tmp_path / "a.safetensors", "--out", tmp_path / "o1")
    assert result.exit_code != 0 and "--baseline multitask is not one of --methods" in result.output
    result = bmtpt("fewshot", *common, "--methods", "multitask,bmtpt", "--baseline", "multitask",
                   "--particles", f"{tmp_path / 'a.safetensors'},{tmp_path / 'b.safetensors'}",
                   "--multitask", ",".join(str(tmp_path / f"m{i}.safetensors") for i in (1, 2, 3)), "--out", tmp_path / "o2")
    assert result.exit_code != 0 and "the baseline multitask 3" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o2").exists()
    result = bmtpt("fewshot", *common, "--methods", "pt,bmtpt",
                   "--particles", f"{tmp_path / 'a.safetensors'},{tmp_path / 'a.safetensors'}", "--out", tmp_path / "o3")
    assert result.exit_code != 0 and "twice" in result.output


@pytest.mark.parametrize("command", [["fewshot", "--methods", "pt"], ["evaluate", "--shots", "4", "--init", "random"]])
def test_selecting_on_the_split_that_is_scored_is_refused(tmp_path, command):
    result = bmtpt(*command, *FAST, "--tasks", "toy_mood_true", "--split", "validation", "--out", tmp_path / "o")
    assert result.exit_code != 0 and "--dev-shots 0" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_cells_run_together_give_each_cell_its_own_run(comparison, tmp_path):
    """The grid's groups (here 3 seeds × 2 posteriors of bmtpt together) against one cell per pass: the same
    cells, subsets and inits, and scores equal to float32 round-off (at most a near-tie flipping an example)."""
    result = bmtpt("fewshot", *FAST, "--tasks", "toy_mood_true", "--methods", "pt,bmtpt", "--shots", "4", "--seeds", "3",
                   "--particles", f"{comparison / 'a.safetensors'},{comparison / 'b.safetensors'}", "--cells-per-pass", "1",
                   "--out", tmp_path / "single")
    assert result.exit_code == 0, result.output

    def rows(out):
        return {(r["method"], r["source"], r["seed"]): r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}

    together, single = rows(comparison / "out"), rows(tmp_path / "single")
    assert together.keys() == single.keys()
    for key, row in together.items():
        assert row["subset_sha256"] == single[key]["subset_sha256"] and row["init_sha256"] == single[key]["init_sha256"]
        assert abs(row["value"] - single[key]["value"]) <= 2 / row["examples"] + 1e-12


def test_seed_lists_are_written_as_ranges():
    from bmtpt_cli.experiments.grid import seed_ranges

    assert seed_ranges(list(range(40))) == "0-39"
    assert seed_ranges([0, 1, 2, 7, 9, 10]) == "0-2, 7, 9-10"
    assert seed_ranges([5]) == "5"
