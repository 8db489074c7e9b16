"""The few-shot grid's table and plot (SPEC §4), checked against sums done by hand, and the methods' plan."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import pytest

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.experiments.grid import GridJob, plan_methods
from bmtpt_cli.experiments.plot import write_plot
from bmtpt_cli.experiments.tables import build_table, format_cell, table_csv, table_markdown

TASKS = [("rte", "glue", "accuracy"), ("mrpc", "glue", "f1"), ("cb", "superglue", "accuracy")]
VALUES = {  # (method, k, task) -> value at seeds 0, 1, 2 (fractions)
    ("pt", 4, "rte"): [0.50, 0.55, 0.60], ("pt", 4, "mrpc"): [0.70, 0.72, 0.80], ("pt", 4, "cb"): [0.40, 0.45, 0.41],
    ("bmtpt", 4, "rte"): [0.61, 0.66, 0.58], ("bmtpt", 4, "mrpc"): [0.81, 0.79, 0.83], ("bmtpt", 4, "cb"): [0.70, 0.64, 0.75],
    ("pt", 16, "rte"): [0.52, 0.51, 0.57], ("pt", 16, "mrpc"): [0.71, 0.74, 0.73], ("pt", 16, "cb"): [0.48, 0.50, 0.47],
    ("bmtpt", 16, "rte"): [0.70, 0.71, 0.69], ("bmtpt", 16, "mrpc"): [0.85, 0.86, 0.80], ("bmtpt", 16, "cb"): [0.80, 0.78, 0.77],
}


def _rows(values=VALUES):
    return [{"method": m, "k": k, "task": t, "seed": seed, "value": v}
            for (m, k, t), per_seed in values.items() for seed, v in enumerate(per_seed)]


def _table(rows=None):
    return build_table(_rows() if rows is None else rows, methods=["pt", "bmtpt"], shots=[4, 16], tasks=TASKS, seeds=[0, 1, 2])


def test_task_cells_are_mean_and_sample_std_over_seeds_in_points():
    table = _table()
    cell = table["blocks"][0]["rows"][1]["cells"]["mrpc"]  # bmtpt, 4-shot
    values = [81.0, 79.0, 83.0]
    assert cell["mean"] == pytest.approx(statistics.fmean(values))
    assert cell["std"] == pytest.approx(2.0)  # sample std of 81, 79, 83
    assert cell["n"] == 3 and cell["per_seed"] == pytest.approx({"0": 81.0, "1": 79.0, "2": 83.0})


def test_averages_are_taken_per_seed_then_over_seeds_per_benchmark_and_overall():
    table = _table()
    assert [c["name"] for c in table["columns"]] == ["rte", "mrpc", "cb", "GLUE avg", "SuperGLUE avg", "avg"]
    cells = table["blocks"][1]["rows"][0]["cells"]  # pt, 16-shot
    glue = [(52 + 71) / 2, (51 + 74) / 2, (57 + 73) / 2]
    overall = [(52 + 71 + 48) / 3, (51 + 74 + 50) / 3, (57 + 73 + 47) / 3]
    assert cells["GLUE avg"]["mean"] == pytest.approx(statistics.fmean(glue))
    assert cells["GLUE avg"]["std"] == pytest.approx(statistics.stdev(glue))
    assert cells["SuperGLUE avg"]["mean"] == pytest.approx(48 + 1 / 3)
    assert cells["avg"]["mean"] == pytest.approx(statistics.fmean(overall))
    assert cells["avg"]["std"] == pytest.approx(statistics.stdev(overall))


def test_one_benchmark_has_only_the_overall_average_and_a_missing_seed_is_left_out():
    values = {key: per_seed for key, per_seed in VALUES.items() if key[2] != "cb"}
    rows = [row for row in _rows(values) if not (row["method"] == "pt" and row["k"] == 4 and row["task"] == "rte" and row["seed"] == 2)]
    table = build_table(rows, methods=["pt", "bmtpt"], shots=[4, 16], tasks=TASKS[:2], seeds=[0, 1, 2])
    assert [c["name"] for c in table["columns"]] == ["rte", "mrpc", "avg"]
    cells = table["blocks"][0]["rows"][0]["cells"]
    assert cells["rte"]["n"] == 2 and cells["avg"]["n"] == 2
    assert cells["avg"]["mean"] == pytest.approx(statistics.fmean([(50 + 70) / 2, (55 + 72) / 2]))


def test_markdown_and_csv_lay_out_one_block_per_k_and_a_row_per_method():
    table = _table()
    markdown = table_markdown(table, title="T", notes=["a note"])
    assert "## 4-shot" in markdown and "## 16-shot" in markdown
    bmtpt_4 = next(line for line in markdown.splitlines() if line.startswith("| bmtpt |"))
    assert "| 81.0 ± 2.0 |" in bmtpt_4  # mrpc, one decimal as the paper
    lines = table_csv(table).splitlines()
    assert lines[0].split(",")[:5] == ["shots", "method", "rte mean", "rte std", "rte n"]
    assert [line.split(",")[:2] for line in lines[1:]] == [["4", "pt"], ["4", "bmtpt"], ["16", "pt"], ["16", "bmtpt"]]
    assert format_cell({"mean": 50.0, "std": None, "n": 1}) == "50.0"


def _calibrated_rows():
    """The rows of `_rows()` with a calibration per row (nll = 0.5 + value, scaled: half of it), cb generated."""
    rows = _rows()
    for row in rows:
        if row["task"] == "cb":  # a generated task: no label distribution, no figures
            row["calibration"] = {"undefined": "greedy generation", "temperature": "not defined: generated"}
        else:
            figures = {"ece": row["value"] / 10, "ece_adaptive": 0.0, "nll": 0.5 + row["value"], "brier": row["value"]}
            row["calibration"] = figures | {"temperature": 2.0, "scaled": {key: v / 2 for key, v in figures.items()}}
    return rows


def test_a_calibration_metric_tables_each_rows_figure_and_a_row_without_it_as_missing():
    rows = _calibrated_rows()
    nll = build_table(rows, methods=["pt", "bmtpt"], shots=[4, 16], tasks=TASKS, seeds=[0, 1, 2], metric="nll")
    cells = nll["blocks"][0]["rows"][1]["cells"]  # bmtpt, 4-shot
    assert cells["mrpc"]["mean"] == pytest.approx(statistics.fmean([1.31, 1.29, 1.33]))  # raw nats, not × 100
    assert cells["cb"] == {"mean": None, "std": None, "n": 0, "per_seed": {}}  # missing, not 0
    assert cells["avg"]["n"] == 0 and cells["GLUE avg"]["n"] == 3  # an average over a missing task is missing
    assert nll["unit"].startswith("nats") and nll["lower_is_better"] and nll["decimals"] == 3
    ece = build_table(rows, methods=["pt", "bmtpt"], shots=[4, 16], tasks=TASKS, seeds=[0, 1, 2], metric="ece-scaled")
    assert ece["blocks"][0]["rows"][1]["cells"]["mrpc"]["mean"] == pytest.approx(100 * statistics.fmean([0.081, 0.079, 0.083]) / 2)
    markdown = table_markdown(nll, title="T", notes=[])
    assert "| 1.310 ± 0.020 |" in markdown.splitlines()[next(i for i, line in enumerate(markdown.splitlines())
                                                                if line.startswith("| bmtpt |"))]
    assert "| – |" in markdown and "lower is better" in markdown
    assert table_csv(nll).splitlines()[0].split(",")[2:5] == ["rte nll mean", "rte nll std", "rte nll n"]
    no_calibration = build_table(_rows(), methods=["pt"], shots=[4], tasks=TASKS, seeds=[0, 1, 2], metric="brier")
    assert all(cell["mean"] is None for cell in no_calibration["blocks"][0]["rows"][0]["cells"].values())
    with pytest.raises(ValueError):
        build_table(rows, methods=["pt"], shots=[4], tasks=TASKS, seeds=[0], metric="ece", solved_at=0.9)


def test_a_generated_cell_says_its_temperature_is_undefined_without_scoring():
    from bmtpt_cli.experiments.fewshot import calibrate_cell
    from bmtpt_cli.scoring.score import TaskScore

    score = TaskScore(task="x", metric="em", value=0.5, decode="generate", examples=4, calibration={"undefined": "generated"})
    calibrated = calibrate_cell(score, None, [], [])  # no model, no scoring: nothing to fit
    assert calibrated.calibration["undefined"] == "generated" and calibrated.calibration["temperature"].startswith("not defined")


@pytest.mark.integration  # matplotlib's import and drawing take a few seconds on a busy CPU
def test_plot_is_a_real_image_with_a_line_per_method(tmp_path):
    from matplotlib.image import imread

    path = tmp_path / "plot.png"
    write_plot(path, _table(), title="few-shot")
    image = imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600  # average panel + three task panels
    colours = {tuple(pixel) for pixel in (image[::4, ::4, :3] * 255).astype(int).reshape(-1, 3).tolist()}
    assert len(colours) > 20  # lines, markers, text: not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))


def _job(**overrides) -> GridJob:
    fields = {f.name: None for f in dataclasses.fields(GridJob)}
    return GridJob(**(fields | {"methods": ["pt"], "shots": [4], "particles": [], "multitask": [],
                                "source_prompts": []} | overrides))


def test_methods_map_to_inits_and_a_missing_source_names_its_flag(tmp_path):
    particles = tmp_path / "p.safetensors"
    particles.write_bytes(b"x")
    plan = plan_methods(_job(methods=["pt", "bmtpt", "bmtpt-noprior", "particle-2"], particles=[particles]))
    assert [(m.init, m.method.prior, m.particle) for m in plan] == [
        ("random", "none", None), (str(particles), "always", None), (str(particles), "never", None),
        (str(particles), "configured", 2),
    ]
    assert [m.prior_used(False) for m in plan] == [False, True, False, False]
    second = tmp_path / "q.safetensors"
    second.write_bytes(b"x")
    plan = plan_methods(_job(methods=["pt", "bmtpt"], particles=[particles, second]))
    assert [(m.name, m.source, m.init) for m in plan] == [
        ("pt", 0, "random"), ("bmtpt", 0, str(particles)), ("bmtpt", 1, str(second)),
    ]  # each source posterior its own cells
    for methods, flag in ((["multitask"], "--multitask"), (["bmtpt"], "--particles"), (["spot"], "--source-prompts")):
        with pytest.raises(BmtptError, match=flag) as excinfo:
            plan_methods(_job(methods=methods))
        assert "\n" not in str(excinfo.value) and methods[0] in str(excinfo.value)
    with pytest.raises(BmtptError, match="not found"):
        plan_methods(_job(methods=["bmtpt"], particles=[particles, tmp_path / "missing.safetensors"]))
    with pytest.raises(BmtptError, match="unknown method 'mpt'"):
        plan_methods(_job(methods=["pt", "mpt"]))
    with pytest.raises(BmtptError, match="twice"):
        plan_methods(_job(methods=["pt", "pt"]))
    with pytest.raises(BmtptError, match="twice"):
        plan_methods(_job(shots=[4, 4]))
    assert Path(str(particles)).exists()


@pytest.mark.integration  # matplotlib drawing
def test_plots_of_a_calibration_metric_and_a_reliability_diagram(tmp_path):
    from bmtpt_cli.experiments.plot import write_reliability_diagram
    from bmtpt_cli.scoring.calibration import expected_calibration_error, reliability_bins

    nll = build_table(_calibrated_rows(), methods=["pt", "bmtpt"], shots=[4, 16], tasks=TASKS, seeds=[0, 1, 2], metric="nll")
    figure = write_plot(tmp_path / "plot.png", nll, title="nll", chance={"rte": 50.0})
    panels = [axis for axis in figure.axes if axis.get_visible() and axis.get_title()]
    assert panels[0].get_ylabel() == "NLL (nats)" and panels[0].get_ylim()[1] < 3  # its own scale, not points
    assert not any("chance" in str(line.get_label()) for axis in panels for line in axis.get_lines())
    assert not any("(accuracy)" in axis.get_title() for axis in panels)  # the panels do not show the main metric
    confidences, correct = [0.55, 0.6, 0.95, 0.97, 0.99, 0.7], [True, False, True, True, False, True]
    bins, scaled = reliability_bins(confidences, correct), reliability_bins([0.6] * 6, correct)
    ece = expected_calibration_error(confidences, correct)
    figure = write_reliability_diagram(tmp_path / "r.png", bins, title="rte", ece=ece, scaled_bins=scaled,
                                       scaled_ece=0.1, temperature=2.5)
    top = figure.axes[0]
    assert f"ECE {100 * ece:.1f}" in figure._suptitle.get_text() and "→ 10.0" in figure._suptitle.get_text()
    assert len(top.patches) == sum(1 for b in bins if b["count"])  # a bar per filled bin, at its accuracy
    assert sorted(p.get_height() for p in top.patches) == sorted(b["accuracy"] for b in bins if b["count"])
    assert any("T = 2.5" in str(line.get_label()) for line in top.get_lines())
    assert (tmp_path / "r.png").stat().st_size > 5_000 and not list(tmp_path.glob(".*.tmp"))
