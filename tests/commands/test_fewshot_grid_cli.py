"""`bmtpt fewshot`: the grid writes the paper's Table 2 from its rows, resumes cell by cell, and
gives every method the same k-shot subset at a seed (SPEC §4)."""

from __future__ import annotations

import csv
import json
import shutil
import statistics

import pytest
import torch

import bmtpt_cli.adapter.train as adapter_training
import bmtpt_cli.experiments.fewshot as fewshot_module
from bmtpt_cli.artifacts import PARTICLES, common_metadata, save_particles
from clihelpers import bmtpt, listing, starting_prompt

TINY_D = 64  # the tiny model's width
FAST = ["--steps", "1", "--batch-size", "4", "--prompt-length", "8"]


def _particles(path, count, seed=0):
    particles = torch.randn(count, 8, TINY_D, generator=torch.Generator().manual_seed(seed))  # (M, l, d)
    metadata = common_metadata(kind=PARTICLES, model="tiny", d_model=TINY_D, prompt_length=8, config={})
    save_particles(path, particles, tasks=["demo_sentiment"], metadata=metadata)
    return particles


class Spy:
    """Counts the cells actually trained: every adapt() call (a retrieval's embedding run) and every
    cell of an adapt_cells() group (the grid's cells), with its init, subset, config, prior mean."""

    def __init__(self):
        self.calls = []
        self.real = adapter_training.adapt
        self.real_cells = fewshot_module.adapt_cells

    def __call__(self, runner, tasks, train, dev, init, config, **kwargs):
        self.calls.append({"task": tasks[0].name, "init": starting_prompt(init), "train": next(iter(train.values())),
                           "config": config, "prior_mean": kwargs.get("prior_mean")})
        return self.real(runner, tasks, train, dev, init, config, **kwargs)

    def cells(self, runner, cells, **kwargs):
        for cell in cells:
            self.calls.append({"task": cell.task.name, "init": starting_prompt(cell.init), "train": cell.train,
                               "config": cell.config, "prior_mean": cell.prior_mean})
        return self.real_cells(runner, cells, **kwargs)

    def install(self, patch):
        patch.setattr(adapter_training, "adapt", self)
        patch.setattr(fewshot_module, "adapt_cells", self.cells)
        return self


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """One grid on two demo tasks: pt and bmtpt × k ∈ {4, 8} × 2 seeds, run once for the module."""
    root = tmp_path_factory.mktemp("grid")
    _particles(root / "p.safetensors", 3)
    with pytest.MonkeyPatch.context() as patch:
        spy = Spy().install(patch)
        result = bmtpt("fewshot", *FAST, "--tasks", "demo_review,demo_rte", "--methods", "pt,bmtpt", "--shots", "4,8",
                       "--seeds", "2", "--particles", root / "p.safetensors", "--out", root / "out")
    assert result.exit_code == 0, result.output
    return root, spy.calls, result


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.integration
def test_the_grid_writes_a_row_per_cell_and_the_table_of_their_means(grid):
    root, calls, result = grid
    out = root / "out"
    assert listing(out) == ["plot.png", "report.json", "results.jsonl", "table.csv", "table.md"]
    rows = _rows(out / "results.jsonl")
    assert len(rows) == len(calls) == 2 * 2 * 2 * 2
    assert {(r["method"], r["k"], r["task"], r["seed"]) for r in rows} == {
        (m, k, t, s) for m in ("pt", "bmtpt") for k in (4, 8) for t in ("demo_review", "demo_rte") for s in (0, 1)
    }
    for row in rows:  # every row says what produced it
        assert row["decode"] == "rank" and row["split"] == "test" and row["examples"] == 64 and row["steps"] == 1
        assert row["lr_factor"] == pytest.approx(1 / 3 if row["k"] == 4 else 1.0)
        assert row["init"] == ("random" if row["method"] == "pt" else str(root / "p.safetensors"))
        assert (row["init_sha256"] == "") == (row["method"] == "pt") and row["prior"] == (row["method"] == "bmtpt")
    table = {(line["shots"], line["method"]): line for line in csv.DictReader((out / "table.csv").open())}
    for (k, method), line in table.items():
        by_seed = {s: {r["task"]: 100 * r["value"] for r in rows if (r["k"], r["method"], r["seed"]) == (int(k), method, s)}
                   for s in (0, 1)}
        for task in ("demo_review", "demo_rte"):
            values = [by_seed[s][task] for s in (0, 1)]
            assert float(line[f"{task} mean"]) == pytest.approx(statistics.fmean(values), abs=1e-4)
            assert float(line[f"{task} std"]) == pytest.approx(statistics.stdev(values), abs=1e-4)
        averages = [statistics.fmean(by_seed[s].values()) for s in (0, 1)]
        assert float(line["avg mean"]) == pytest.approx(statistics.fmean(averages), abs=1e-4)
        assert float(line["avg std"]) == pytest.approx(statistics.stdev(averages), abs=1e-4)
    assert sorted(table) == [("4", "bmtpt"), ("4", "pt"), ("8", "bmtpt"), ("8", "pt")]
    markdown = (out / "table.md").read_text()
    assert "## 4-shot" in markdown and "| bmtpt |" in markdown and "demo_review" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["protocol"]["seeds"] == [0, 1] and report["cells"] == 16
    assert [m["name"] for m in report["methods"]] == ["pt", "bmtpt"]


@pytest.mark.integration
def test_the_plot_is_a_non_trivial_image(grid):
    from matplotlib.image import imread

    image = imread(grid[0] / "out" / "plot.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas


@pytest.mark.integration
def test_every_method_sees_the_same_subset_at_a_seed(grid):
    _, calls, _ = grid
    rows = _rows(grid[0] / "out" / "results.jsonl")
    subsets = {}
    for row in rows:
        subsets.setdefault((row["k"], row["task"], row["seed"]), set()).add(row["subset_sha256"])
    assert all(len(hashes) == 1 for hashes in subsets.values())  # pt and bmtpt: one subset per (k, task, seed)
    assert len({next(iter(h)) for h in subsets.values()}) == len(subsets)  # and a new one for another seed or k
    by_cell = {}
    for call in calls:
        by_cell.setdefault((call["task"], len(call["train"]), call["config"].seed), []).append(call["train"])
    assert all(len(seen) == 2 and seen[0] == seen[1] for seen in by_cell.values())


@pytest.mark.integration
def test_a_resumed_grid_runs_only_the_missing_cell(grid, tmp_path, monkeypatch):
    root, _, _ = grid
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    removed = json.loads(lines.pop(5))
    (out / "results.jsonl").write_bytes(b"".join(lines))
    table_before = (root / "out" / "table.csv").read_bytes()
    spy = Spy().install(monkeypatch)
    args = ["fewshot", *FAST, "--tasks", "demo_review,demo_rte", "--methods", "pt,bmtpt", "--shots", "4,8",
            "--seeds", "2", "--particles", root / "p.safetensors", "--out", out]
    refused = bmtpt(*args)
    assert refused.exit_code == 2 and "--resume" in refused.stderr and "--force" in refused.stderr
    result = bmtpt(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert [(c["task"], len(c["train"]), c["config"].seed) for c in spy.calls] == [(removed["task"], removed["k"], removed["seed"])]
    after = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    assert after[:-1] == lines  # the other rows are untouched, byte for byte
    rerun = json.loads(after[-1])
    # the same cell again gives the same row (CPU, same seed); it ran alone, not in its group of two, so its
    # label scores come from other passes and its calibration agrees to round-off
    calibration, removed_calibration = rerun.pop("calibration"), removed.pop("calibration")
    assert rerun == removed
    assert calibration == pytest.approx(removed_calibration, rel=1e-6, abs=1e-9)
    assert (out / "table.csv").read_bytes() == table_before
    changed = bmtpt(*args, "--steps", "3", "--resume")  # a later flag wins: other settings than the rows'
    assert changed.exit_code == 2 and "steps" in changed.stderr and len(spy.calls) == 1


@pytest.mark.integration
def test_metric_ece_tables_each_rows_calibration_and_compares_it(grid, tmp_path):
    """`--metric ece` on a finished grid (`--resume`: no cell runs again): the table, CSV, plot and paired
    comparisons show each cell's ECE × 100 from its row, lower is better, the unit said."""
    root, _, _ = grid
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    rows = _rows(out / "results.jsonl")
    result = bmtpt("fewshot", *FAST, "--tasks", "demo_review,demo_rte", "--methods", "pt,bmtpt", "--shots", "4,8",
                   "--seeds", "2", "--particles", root / "p.safetensors", "--out", out, "--resume", "--metric", "ece")
    assert result.exit_code == 0, result.output
    assert _rows(out / "results.jsonl") == rows  # nothing ran again
    table = {(line["shots"], line["method"]): line for line in csv.DictReader((out / "table.csv").open())}
    for (k, method), line in table.items():
        for task in ("demo_review", "demo_rte"):
            values = [100 * r["calibration"]["ece"] for r in rows if (r["k"], r["method"], r["task"]) == (int(k), method, task)]
            assert float(line[f"{task} ece mean"]) == pytest.approx(statistics.fmean(values), abs=1e-4)
    markdown = (out / "table.md").read_text()
    assert "Cells show ECE, in points (ECE × 100" in markdown and "lower is better" in markdown
    report = json.loads((out / "report.json").read_text())
    assert report["table"]["quantity"] == "ece" and report["table"]["lower_is_better"]
    pair = next(c for c in report["comparisons"] if (c["shots"], c["column"]) == (4, "demo_rte"))
    ece = {(r["method"], r["seed"]): 100 * r["calibration"]["ece"] for r in rows if (r["k"], r["task"]) == (4, "demo_rte")}
    assert [p["difference"] for p in pair["pairs"]] == pytest.approx([ece[("bmtpt", s)] - ece[("pt", s)] for s in (0, 1)])


@pytest.mark.integration
def test_a_calibrated_grid_fits_a_temperature_per_cell_and_keeps_its_scores(grid, tmp_path):
    """`--calibrate`: each cell's row holds its temperature, fitted on its dev examples, and the scaled
    calibration beside the unscaled one, which (with the value and metrics) is the uncalibrated cell's."""
    root, _, _ = grid
    args = ["fewshot", *FAST, "--tasks", "demo_rte", "--methods", "pt", "--shots", "4", "--seeds", "2", "--out", tmp_path / "out"]
    result = bmtpt(*args, "--calibrate", "--metric", "ece-scaled")
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "out" / "results.jsonl")
    plain = {r["seed"]: r for r in _rows(root / "out" / "results.jsonl") if (r["method"], r["k"], r["task"]) == ("pt", 4, "demo_rte")}
    for row in rows:
        entry, before = row["calibration"], plain[row["seed"]]
        assert isinstance(entry["temperature"], float) and entry["fitted_on"] == "validation, the cell's dev subset (32 examples)"
        assert set(entry["scaled"]) == {"ece", "ece_adaptive", "nll", "brier"} and row["fingerprint"]["calibrate"] is True
        assert (row["value"], row["metrics"]) == (before["value"], before["metrics"])  # argmax unchanged
        assert {k: entry[k] for k in before["calibration"]} == pytest.approx(before["calibration"], rel=1e-9, abs=1e-12)
    line = next(csv.DictReader((tmp_path / "out" / "table.csv").open()))
    scaled = [100 * r["calibration"]["scaled"]["ece"] for r in rows]
    assert float(line["demo_rte ece-scaled mean"]) == pytest.approx(statistics.fmean(scaled), abs=1e-4)
    refused = bmtpt(*args, "--resume")  # rows fitted with --calibrate are not another run's
    assert refused.exit_code == 2 and "calibrate" in refused.stderr


@pytest.mark.integration
def test_pt_and_bmtpt_start_from_their_inits(grid):
    root, calls, _ = grid
    particles = _particles(root / "unused.safetensors", 3)  # the same seeded draw as p.safetensors
    rows = _rows(root / "out" / "results.jsonl")
    cells = {(r["method"], r["k"], r["task"], r["seed"]): call for r, call in zip(rows, calls)}
    pt_0, pt_1 = cells[("pt", 4, "demo_rte", 0)], cells[("pt", 4, "demo_rte", 1)]
    assert not torch.equal(pt_0["init"], pt_1["init"]) and pt_0["prior_mean"] is None  # a random init per seed, no prior
    bmtpt_0 = cells[("bmtpt", 4, "demo_rte", 0)]
    assert torch.allclose(bmtpt_0["init"], particles.mean(0)) and torch.allclose(bmtpt_0["prior_mean"], particles.mean(0))
    assert bmtpt_0["config"].lr_shared == pytest.approx(0.1)  # k = 4: lr × 1/3
    assert cells[("bmtpt", 8, "demo_rte", 0)]["config"].lr_shared == pytest.approx(0.3)


@pytest.mark.integration
def test_multitask_noprior_and_one_particle_start_from_their_files(tmp_path, monkeypatch):
    particles = _particles(tmp_path / "p.safetensors", 3, seed=1)
    single = _particles(tmp_path / "m.safetensors", 1, seed=2)
    spy = Spy().install(monkeypatch)
    result = bmtpt("fewshot", *FAST, "--tasks", "demo_rte", "--shots", "4", "--seeds", "1",
                   "--methods", "multitask,bmtpt-noprior,particle-1", "--particles", tmp_path / "p.safetensors",
                   "--multitask", tmp_path / "m.safetensors", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    cells = {row["method"]: call for row, call in zip(_rows(tmp_path / "out" / "results.jsonl"), spy.calls)}
    assert cells["multitask"]["train"] == cells["bmtpt-noprior"]["train"] == cells["particle-1"]["train"]
    assert torch.allclose(cells["multitask"]["init"], single[0]) and torch.equal(cells["multitask"]["prior_mean"], single[0])
    assert torch.allclose(cells["bmtpt-noprior"]["init"], particles.mean(0)) and cells["bmtpt-noprior"]["prior_mean"] is None
    assert torch.allclose(cells["particle-1"]["init"], particles[1])
    assert torch.allclose(cells["particle-1"]["prior_mean"], particles[1])
    assert json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[2])["init_details"]["particle"] == 1


@pytest.mark.integration
def test_spot_retrieves_a_source_prompt_on_the_cells_subset(tmp_path, monkeypatch):
    from bmtpt_cli.artifacts import PROMPTS, file_sha256, save_prompts

    directory = tmp_path / "sources"
    directory.mkdir()
    prompts = {}
    for seed, task in enumerate(("demo_sentiment", "demo_topic")):
        prompts[task] = torch.randn(8, TINY_D, generator=torch.Generator().manual_seed(10 + seed))  # (l, d)
        metadata = common_metadata(kind=PROMPTS, model="tiny", d_model=TINY_D, prompt_length=8, config={})
        save_prompts(directory / f"{task}.safetensors", prompts[task], {task: (torch.ones(8), torch.ones(TINY_D))},
                     metadata=metadata)
    spy = Spy().install(monkeypatch)
    result = bmtpt("fewshot", *FAST, "--tasks", "demo_rte", "--shots", "4", "--seeds", "1", "--methods", "spot",
                   "--source-prompts", directory, "--retrieval-steps", "1", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (row,) = _rows(tmp_path / "out" / "results.jsonl")
    details = row["init_details"]
    assert details["method"] == "retrieve" and set(details["similarities"]) == {"demo_sentiment", "demo_topic"}
    chosen = max(details["similarities"], key=details["similarities"].get)
    assert details["chosen"] == chosen and row["init_sha256"] == file_sha256(directory / f"{chosen}.safetensors")
    embedding_run, cell = spy.calls  # the embedding's short run on the cell's own subset, then the cell
    assert embedding_run["train"] == cell["train"]
    assert torch.allclose(cell["init"], prompts[chosen]) and torch.allclose(cell["prior_mean"], prompts[chosen])


def test_refusals_are_one_line_and_name_the_fix(tmp_path):
    _particles(tmp_path / "p3.safetensors", 3)
    cases = [
        (["--methods", "pt,multitask"], "--multitask"),
        (["--methods", "multitask", "--multitask", tmp_path / "p3.safetensors"], "one-particle"),
        (["--methods", "particle-7", "--particles", tmp_path / "p3.safetensors"], "particle-0 … particle-2"),
        (["--methods", "pt,mpt"], "unknown method 'mpt'"),
        (["--methods", "bmtpt", "--particles", tmp_path / "none.safetensors"], "--particles"),
        (["--methods", "pt", "--resume"], "no results"),
        (["--methods", "pt", "--shots", "4,0"], "--shots"),
        (["--methods", "pt", "--calibrate", "--dev-shots", "0"], "--calibrate needs dev examples: pass --dev-shots N"),
        (["--methods", "pt", "--metric", "ece-scaled"], "add --calibrate"),
        (["--methods", "pt", "--metric", "nll", "--solved-at", "0.9"], "--solved-at"),
    ]
    for extra, expected in cases:
        result = bmtpt("fewshot", "--tasks", "demo_rte", "--out", tmp_path / "out", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert listing(tmp_path) == ["p3.safetensors"]  # nothing written by a refused grid
