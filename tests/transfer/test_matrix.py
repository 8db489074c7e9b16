"""The transfer matrices' arithmetic, the zero-shot loop, and how a matrix is written (CSV, JSON, PNG, folder)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.scoring.score import TaskScore
from bmtpt_cli.experiments.transfer.matrix import Matrix, error_reduction, relative_scores, zero_shot_scores
from bmtpt_cli.experiments.transfer.write import csv_text, staged_folder, write_matrix
from clihelpers import listing


def test_relative_scores_divide_by_the_targets_own_score():
    scores = [[0.5, 0.2], [0.25, 0.4]]  # rows sources, columns targets
    own = [0.5, 0.4]
    assert relative_scores(scores, own) == [[100.0, 50.0], [50.0, 100.0]]
    assert math.isnan(relative_scores([[0.3]], [0.0])[0][0])  # no own score to be relative to


def test_error_reduction_is_spots_relative_error_reduction_in_percent():
    tuned = [[0.8, 0.5], [0.6, 0.75]]
    random = [0.6, 0.5]
    # target 1: err_random 0.4; source 1 err 0.2 → 50 %, source 2 err 0.4 → 0 %
    # target 2: err_random 0.5; source 1 err 0.5 → 0 %, source 2 err 0.25 → 50 %
    (first, second) = error_reduction(tuned, random)
    assert first == pytest.approx([50.0, 0.0]) and second == pytest.approx([0.0, 50.0])
    assert error_reduction([[0.4]], [0.6])[0] == pytest.approx([-50.0])  # worse than random init: negative
    assert math.isnan(error_reduction([[0.9]], [1.0])[0][0])  # nothing left to reduce


class _Task:
    def __init__(self, name):
        self.name = name


def _score(task: str, value: float) -> TaskScore:
    return TaskScore(task=task, metric="accuracy", value=value, decode="rank", examples=4)


def test_zero_shot_scores_every_pair_and_reuses_the_diagonal_as_the_own_score():
    calls = []

    def score(prompt, task):
        calls.append((float(prompt[0, 0]), task.name))
        return _score(task.name, float(prompt[0, 0]) / 10 + len(task.name) / 100)

    sources = {"x": torch.full((2, 3), 1.0), "y": torch.full((2, 3), 2.0)}
    own = {"y": sources["y"], "z": torch.full((2, 3), 3.0)}
    cells, own_scores = zero_shot_scores(score, sources, [_Task("y"), _Task("z")], own)
    assert set(cells) == {("x", "y"), ("y", "y"), ("x", "z"), ("y", "z")}
    assert own_scores["y"] is cells[("y", "y")]  # scored once, so relative diagonal is exactly 100
    assert own_scores["z"].value == pytest.approx(0.3 + 0.01)  # z is no source: its own prompt is scored apart
    assert len(calls) == 5 and (3.0, "z") in calls
    relative = relative_scores([[cells[(s, t)].value for t in "yz"] for s in "xy"], [own_scores[t].value for t in "yz"])
    assert relative[1][0] == 100.0


def _matrix(rows=3, columns=4, **kwargs) -> Matrix:
    values = [[(i * columns + j) / 7 - 0.5 for j in range(columns)] for i in range(rows)]
    values[0][1] = float("nan")
    fields = dict(name="demo", title="A title that says what is shown", description="cells", unit="units",
                  rows=[f"source{i}" for i in range(rows)], columns=[f"target{j}" for j in range(columns)], values=values)
    return Matrix(**(fields | kwargs))


def test_csv_has_a_header_row_and_column_and_round_trips_the_values():
    matrix = _matrix()
    rows = list(csv.reader(csv_text(matrix).splitlines()))
    assert rows[0] == ["source prompt \\ target task", "target0", "target1", "target2", "target3"]
    assert [row[0] for row in rows[1:]] == ["source0", "source1", "source2"]
    assert rows[1][2] == ""  # the undefined cell
    assert float(rows[3][4]) == matrix.values[2][3]  # exact: written with repr


def test_write_matrix_writes_csv_json_and_a_non_trivial_png(tmp_path):
    import matplotlib.image

    matrix = _matrix(rows=12, columns=12, centre=0.0, extra={"all_metrics": {"s -> t": {"pearson": float("nan")}}})
    paths = write_matrix(tmp_path, matrix, {"settings": {"seed": 0}})
    assert [p.name for p in paths] == ["demo.csv", "demo.json", "demo.png"]
    record = json.loads(paths[1].read_text())
    assert record["rows"] == matrix.rows and record["columns"] == matrix.columns
    assert record["values"][0][1] is None and record["values"][2][3] == matrix.values[2][3]
    assert record["title"] == matrix.title and record["unit"] == "units" and record["settings"] == {"seed": 0}
    assert record["all_metrics"] == {"s -> t": {"pearson": None}}  # an undefined metric is null: the file stays JSON
    image = matplotlib.image.imread(paths[2])
    height, width = image.shape[:2]
    assert width > 800 and height > 600  # a 12 × 12 matrix gets room for its labels and values
    colours = {tuple(pixel) for pixel in (image[::4, ::4, :3] * 255).round().astype(int).reshape(-1, 3).tolist()}
    assert len(colours) > 50  # a colour map, a colour bar and text, not a blank canvas
    assert listing(tmp_path) == ["demo.csv", "demo.json", "demo.png"]  # no temporary files left


def test_the_output_folder_is_replaced_only_with_force_and_a_failed_run_leaves_it_as_it_was(tmp_path):
    out = tmp_path / "transfer"
    with staged_folder(out, force=False) as folder:
        (folder / "first.csv").write_text("1")
    assert listing(out) == ["first.csv"]
    with pytest.raises(BmtptError, match="already exists: pass --force"):
        with staged_folder(out, force=False):
            pass
    with pytest.raises(RuntimeError):
        with staged_folder(out, force=True) as folder:
            (folder / "second.csv").write_text("2")
            raise RuntimeError("stopped half-way")
    assert listing(out) == ["first.csv"]
    with staged_folder(out, force=True) as folder:
        (folder / "second.csv").write_text("2")
    assert listing(out) == ["second.csv"]  # replaced as a whole: no stale file of the earlier run
    assert listing(tmp_path) == ["transfer"]  # no staging folder, old folder or lock left behind
    (tmp_path / "file").write_text("")
    with pytest.raises(BmtptError, match="is a file"):
        with staged_folder(tmp_path / "file", force=True):
            pass
