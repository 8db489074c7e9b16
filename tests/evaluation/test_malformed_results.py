"""A few-shot probe's cells file and a grid's results.jsonl, damaged or edited, are refused on
--resume in one line naming the file (issue 27: tracebacks), and an intact one is read as before."""

from __future__ import annotations

import json

import pytest

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.experiments.grid import read_results
from clihelpers import bmtpt, one_line_error

FINGERPRINT = {"lr": 0.3, "model": "tiny"}
SCORE = {"task": "demo_nli", "metric": "accuracy", "value": 0.5, "decode": "rank", "examples": 8,
         "metrics": {"accuracy": 0.5}, "rules": {"rank_score": "sum"}, "invalid": 0}
CELL = {"task": "demo_nli", "seed": 1, "fingerprint": FINGERPRINT, "score": SCORE}
ROW = {"method": "pt", "k": 4, "task": "demo_nli", "seed": 1, "metric": "accuracy", "value": 0.5, "decode": "rank",
       "fingerprint": FINGERPRINT}


def _write(path, records) -> None:
    path.write_bytes(b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in records))


def _without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


def test_an_intact_results_file_is_read(tmp_path):
    _write(tmp_path / "results.jsonl", [ROW, b'{"method": "pt", "se'])  # and a torn last line
    assert read_results(tmp_path / "results.jsonl", {("pt", 0, 4, "demo_nli", 1): FINGERPRINT}) == {("pt", 0, 4, "demo_nli", 1): ROW}


def test_a_probe_cells_file_of_another_form_is_a_one_line_error_on_resume(tmp_path):
    """`evaluate --shots` runs the grid's cells, so its cells file holds grid rows: a record of the
    form earlier versions wrote (or anything else) is refused naming the file and --force."""
    path = tmp_path / "probe.json.cells.jsonl"
    _write(path, [CELL])
    line = one_line_error(bmtpt("evaluate", "--shots", "4", "--init", "random", "--tasks", "demo_nli", "--seeds", "1",
                                "--steps", "1", "--out", tmp_path / "probe.json", "--resume"))
    assert str(path) in line and "--force" in line, line
    assert path.read_bytes() == (json.dumps(CELL) + "\n").encode()  # left as it was


ROW_CASES = {
    "fingerprint a list": {**ROW, "fingerprint": [1]},
    "k a list": {**ROW, "k": [4]},
    "value a string": {**ROW, "value": "0.5"},
    "no value": _without(ROW, "value"),
    "decode a number": {**ROW, "decode": 3},
    "metric missing": _without(ROW, "metric"),
}


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_a_malformed_results_row_is_a_one_line_error(tmp_path, case):
    path = tmp_path / "results.jsonl"
    _write(path, [ROW_CASES[case]])
    with pytest.raises(BmtptError) as excinfo:
        read_results(path, {("pt", 0, 4, "demo_nli", 1): FINGERPRINT})
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message and "--force" in message, message


def test_invalid_utf8_in_a_results_file_is_not_a_traceback(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes((json.dumps(ROW) + "\n").encode() + b"\xff\xfe garbage\n")
    assert list(read_results(path, {("pt", 0, 4, "demo_nli", 1): FINGERPRINT})) == [("pt", 0, 4, "demo_nli", 1)]
