"""Paper-ready figures (issue 26, item 9): what a reader of `bmtpt fewshot`'s plot and of
`bmtpt transfer-matrix`'s heatmaps, CSV and JSON would notice, read back from the matplotlib
objects and the files the commands write."""

from __future__ import annotations

import csv
import json

import pytest

import bmtpt_cli.experiments.grid as grid_module
import bmtpt_cli.experiments.transfer.heatmap as heatmap_module
from clihelpers import bmtpt

pytestmark = pytest.mark.integration  # each test runs a command end to end on `tiny`


def _spy(patch, module, name):
    """Replace `module.name` by a wrapper that records what each call returns."""
    returned, real = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        value = real(*args, **kwargs)
        returned.append(value)
        return value

    patch.setattr(module, name, wrapper)
    return returned


def _inside(inner, outer, slack=1.0) -> bool:
    return (inner.x0 >= outer.x0 - slack and inner.y0 >= outer.y0 - slack
            and inner.x1 <= outer.x1 + slack and inner.y1 <= outer.y1 + slack)


# ------------------------------------------------------------------------------------------ few-shot plot
@pytest.fixture(scope="module")
def fewshot(tmp_path_factory):
    """A grid over two benchmarks (demo, toyworld): its plot.png and the Figure `write_plot` drew."""
    out = tmp_path_factory.mktemp("fewshot") / "out"
    with pytest.MonkeyPatch.context() as patch:
        figures = _spy(patch, grid_module, "write_plot")
        result = bmtpt("fewshot", "--steps", "1", "--batch-size", "4", "--prompt-length", "4", "--methods", "pt",
                       "--shots", "4,8", "--seeds", "2", "--tasks", "demo_rte,demo_nli,toy_animal_right", "--out", out)
    assert result.exit_code == 0, result.output
    assert figures and figures[0] is not None, "write_plot returns the Figure it wrote"
    return figures[0], out


def _panels(figure):
    return [axis for axis in figure.axes if axis.get_visible() and axis.get_title()]


def test_fewshot_plot_shares_one_y_axis_and_has_a_panel_per_benchmark_average(fewshot):
    figure, out = fewshot
    panels = _panels(figure)
    titles = [axis.get_title() for axis in panels]
    assert any(title.startswith("average") for title in titles)
    assert any("demo" in title and "average" in title for title in titles)  # per-benchmark averages
    assert not any("toyworld" in title and "average" in title for title in titles)  # one task: its panel is it
    assert sum("demo_rte" in t for t in titles) == 1 and sum("toy_animal_right" in t for t in titles) == 1
    assert len({axis.get_ylim() for axis in panels}) == 1, "one y-range for the whole figure"
    low, high = panels[0].get_ylim()
    assert low >= -5 and high <= 105  # points of metrics that live in 0…100
    assert (out / "plot.png").stat().st_size > 10_000


def test_fewshot_plot_draws_chance_and_keeps_legend_and_titles_out_of_the_way(fewshot):
    figure, _ = fewshot
    panels = _panels(figure)
    for axis in panels:  # every task here is accuracy over known labels: uniform chance 1/|labels|
        chance = [line for line in axis.get_lines() if "chance" in str(line.get_label())]
        assert chance, f"no chance line in '{axis.get_title()}'"
    rte = next(axis for axis in panels if "demo_rte" in axis.get_title())
    chance_rte = next(line for line in rte.get_lines() if "chance" in str(line.get_label()))
    assert set(chance_rte.get_ydata()) == {50.0}  # two labels
    nli = next(axis for axis in panels if "demo_nli" in axis.get_title())
    chance_nli = next(line for line in nli.get_lines() if "chance" in str(line.get_label()))
    assert list(chance_nli.get_ydata()) == pytest.approx([100 / 3, 100 / 3])
    legends = [*figure.legends, *(axis.get_legend() for axis in figure.axes if axis.get_legend())]
    text = " ".join(t.get_text() for t in figure.texts) + " ".join(t.get_text() for legend in legends for t in legend.get_texts())
    assert "uniform" in text  # which chance it is
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    box = figure.bbox
    assert legends
    for legend in legends:
        extent = legend.get_window_extent(renderer)
        assert _inside(extent, box)
        assert not any(extent.overlaps(axis.get_window_extent(renderer)) for axis in panels), "legend over the data"
    for axis in panels:
        assert _inside(axis.title.get_window_extent(renderer), box), axis.get_title()
    assert _inside(figure._suptitle.get_window_extent(renderer), box)


def test_fewshot_error_bars_stay_within_the_metrics_range(tmp_path):
    """Seeds at 100 and 80 give mean 90 ± 14.1: the bar stops at 100."""
    from bmtpt_cli.experiments.plot import write_plot
    from bmtpt_cli.experiments.tables import build_table

    rows = [{"method": "pt", "k": k, "task": "demo_rte", "seed": seed, "value": value}
            for k in (4, 8) for seed, value in enumerate((1.0, 0.8))]
    table = build_table(rows, methods=["pt"], shots=[4, 8], tasks=[("demo_rte", "demo", "accuracy")], seeds=[0, 1])
    figure = write_plot(tmp_path / "plot.png", table, title="t" * 300)
    from matplotlib.collections import LineCollection

    tops = [y for axis in figure.axes for collection in axis.collections if isinstance(collection, LineCollection)
            for segment in collection.get_segments() for _, y in segment]
    assert tops and max(tops) <= 100.0 and min(tops) >= 0.0
    figure.canvas.draw()
    assert _inside(figure._suptitle.get_window_extent(figure.canvas.get_renderer()), figure.bbox)  # long titles wrap


# ------------------------------------------------------------------------------------------ transfer heatmaps
@pytest.fixture(scope="module")
def transfer(tmp_path_factory):
    """Three prompts, two targets given in a non-alphabetical order, one tuning step, generated (so
    `tiny`'s predictions are all invalid): the files and every heatmap Figure drawn."""
    from test_transfer_matrix import make_prompts_dir

    root = tmp_path_factory.mktemp("heatmaps")
    make_prompts_dir(root / "prompts")
    with pytest.MonkeyPatch.context() as patch:
        figures = _spy(patch, heatmap_module, "heatmap_figure")
        result = bmtpt("transfer-matrix", "--prompts-dir", root / "prompts", "--max-source-length", "48",
                       "--tasks", "demo_rte,demo_nli", "--tune", "1", "--batch-size", "4", "--decode", "generate",
                       "--out", root / "out")
    assert result.exit_code == 0, result.output
    records = {path.stem: json.loads(path.read_text()) for path in (root / "out").glob("*.json")}
    return {"out": root / "out", "records": records, "figures": figures, "result": result}


def test_heatmap_rows_and_columns_share_one_order_and_own_prompt_cells_are_outlined(transfer):
    from matplotlib.patches import Rectangle

    zero = transfer["records"]["zero_shot"]
    assert zero["columns"] == ["demo_rte", "demo_nli"]  # --tasks order
    assert zero["rows"] == ["demo_rte", "demo_nli", "demo_review"]  # the same order, then the other sources
    figure = transfer["figures"][0]
    axis = figure.axes[0]
    assert [t.get_text() for t in axis.get_yticklabels()] == zero["rows"]
    assert [t.get_text() for t in axis.get_xticklabels()] == zero["columns"]
    boxes = [(p.get_x() + p.get_width() / 2, p.get_y() + p.get_height() / 2) for p in axis.patches if isinstance(p, Rectangle)]
    assert sorted(boxes) == [pytest.approx((0.0, 0.0)), pytest.approx((1.0, 1.0))]  # the own-prompt cells, on the diagonal
    csv_rows = [row for row in csv.reader((transfer["out"] / "zero_shot.csv").read_text().splitlines())
                if row and not row[0].startswith("#")]
    assert csv_rows[0][1:] == zero["columns"] and [row[0] for row in csv_rows[1:]] == zero["rows"]
    assert transfer["records"]["similarity_mean"]["rows"][:2] == ["demo_rte", "demo_nli"]


def test_tuned_and_error_reduction_maps_carry_the_random_init_baseline(transfer):
    for name in ("tuned", "error_reduction"):
        record = transfer["records"][name]
        assert record["rows"][-1] == "random init", name
        assert record["rows"][:3] == ["demo_rte", "demo_nli", "demo_review"]
        text = (transfer["out"] / f"{name}.csv").read_text()
        assert any(line.startswith("random init,") for line in text.splitlines())


def test_chance_caveat_and_invalid_counts_are_in_every_file(transfer):
    out = transfer["out"]
    for name, record in transfer["records"].items():
        notes = " ".join(record["notes"])
        assert "tiny" in notes and "chance" in notes, name
        csv_text = (out / f"{name}.csv").read_text()
        assert "chance" in csv_text, name
    zero = transfer["records"]["zero_shot"]
    assert zero["invalid"] == [[64, 64], [64, 64], [64, 64]] and zero["examples"][0] == [64, 64]
    assert zero["values"][0][0] is None  # 64/64 invalid: undefined, not 0.0
    csv_text = (out / "zero_shot.csv").read_text()
    assert "64/64 invalid" in csv_text
    figure = transfer["figures"][0]
    cells = [t.get_text() for t in figure.axes[0].texts]
    assert "0.000" not in cells and any("64/64 invalid" in cell for cell in cells)
    caption = " ".join(t.get_text() for t in figure.texts)
    assert "tiny" in caption and "invalid" in caption
    table = transfer["result"].stdout
    assert "64/64 invalid" in table and " 0.0 " not in table


def test_evaluate_shows_a_task_with_every_generation_invalid_as_undefined(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "export"))
    from exporthelpers import write_prompts

    write_prompts(tmp_path / "p.safetensors")
    result = bmtpt("evaluate", "--prompts", tmp_path / "p.safetensors", "--decode", "generate", "--max-source-length", "48",
                   "--out", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert all(row["invalid"] == row["examples"] for row in report["results"])  # tiny generates no label word
    assert "invalid)" in result.stdout and "0.0000 " not in result.stdout, result.stdout
