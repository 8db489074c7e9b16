"""`--report-to` (issue 26, Tracking): every training command also sends its step records and resolved
settings to a CSV file or TensorBoard (read back here, equal to the step log), or to MLflow / W&B
when their optional packages are installed (a missing one is refused in one line naming the extra)."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest

from bmtpt_cli.runtime.checkpoint import read_jsonl_records
from bmtpt_cli.runtime.loop import TrainingLoop
from bmtpt_cli.runtime.outputs import RunOutput, sidecar
from bmtpt_cli.runtime.tracking import flatten
from clihelpers import FAST, bmtpt

SOURCE = ["source", *FAST["source"]]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _assert_rows_equal_log(rows: list[dict[str, str]], records: list[dict]) -> None:
    """Every CSV row holds its step record's values, flattened (numbers exactly, as Python writes them)."""
    assert [int(row["step"]) for row in rows] == [record["step"] for record in records]
    for row, record in zip(rows, records):
        for key, value in flatten(record).items():
            if value is None:
                assert row[key] == ""
            elif isinstance(value, float):
                assert float(row[key]) == value, key
            else:
                assert row[key] == str(value), key


def test_source_report_to_csv_holds_the_step_log_and_settings(tmp_path):
    out = tmp_path / "p.safetensors"
    result = bmtpt(*SOURCE, "--report-to", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    output = RunOutput(out, False, False)
    records = read_jsonl_records(output.log)
    rows = _csv_rows(sidecar(out, ".csv"))
    assert len(records) == 6
    _assert_rows_equal_log(rows, records)
    assert "particle_losses/1" in rows[0]  # nested values flattened
    settings = json.loads(sidecar(out, ".settings.json").read_text())
    assert settings["steps"] == 6 and settings["report_to"] == "csv" and settings["particles"] == 2


def test_default_report_to_none_writes_no_tracking_files(tmp_path):
    out = tmp_path / "p.safetensors"
    assert bmtpt(*SOURCE, "--steps", "2", "--out", out).exit_code == 0
    assert not sidecar(out, ".csv").exists() and not sidecar(out, ".tb").exists()


def test_adapt_report_to_csv_widens_for_dev_and_matches_log(tmp_path):
    init = tmp_path / "p.safetensors"
    assert bmtpt(*SOURCE, "--steps", "2", "--out", init).exit_code == 0
    out = tmp_path / "prompts.safetensors"
    result = bmtpt("adapt", *FAST["adapt"], "--init", init, "--report-to", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    records = read_jsonl_records(RunOutput(out, False, False).log)
    rows = _csv_rows(sidecar(out, ".csv"))
    _assert_rows_equal_log(rows, records)
    dev_columns = [key for key in rows[0] if key.startswith("dev/")]
    assert dev_columns and rows[0][dev_columns[0]] == "" and rows[1][dev_columns[0]] != ""  # eval every 2 steps


def test_resume_drops_the_csv_rows_after_the_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "p.safetensors"
    original = TrainingLoop.end_step

    def end_step(self, record, method_state):  # stop as on SIGTERM after step 5 (checkpoint at 4, then 5)
        if self.step == 5:
            self._stop.requested = "SIGTERM"
        original(self, record, method_state)

    argv = [*SOURCE, "--checkpoint-every", "4", "--report-to", "csv", "--out", out]
    with monkeypatch.context() as patch:
        patch.setattr(TrainingLoop, "end_step", end_step)
        assert bmtpt(*argv).exit_code == 130
    assert len(_csv_rows(sidecar(out, ".csv"))) == 5
    result = bmtpt(*argv, "--resume")
    assert result.exit_code == 0, result.output
    records = read_jsonl_records(RunOutput(out, False, False).log)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    _assert_rows_equal_log(_csv_rows(sidecar(out, ".csv")), records)


def test_tensorboard_events_equal_the_step_log(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "p.safetensors"
    result = bmtpt(*SOURCE, "--report-to", "tensorboard", "--out", out)
    assert result.exit_code == 0, result.output
    records = read_jsonl_records(RunOutput(out, False, False).log)
    events = EventAccumulator(str(sidecar(out, ".tb")), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    for tag in ("loss", "bandwidth", "mean_distance", "lr", "particle_losses/0"):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        expected = [(r["step"], flatten(r)[tag]) for r in records]
        assert [s for s, _ in logged] == [s for s, _ in expected], tag
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6), tag  # float32 scalars
    assert "settings/text_summary" in events.Tags()["tensors"]


def test_resume_purges_the_tensorboard_events_after_the_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "p.safetensors"
    original = TrainingLoop.end_step

    def end_step(self, record, method_state):  # stop after step 5: checkpoint at 4, step 5 logged then redone
        if self.step == 5:
            self._stop.requested = "SIGTERM"
        original(self, record, method_state)

    argv = [*SOURCE, "--checkpoint-every", "4", "--report-to", "tensorboard", "--out", out]
    with monkeypatch.context() as patch:
        patch.setattr(TrainingLoop, "end_step", end_step)
        assert bmtpt(*argv).exit_code == 130
    assert bmtpt(*argv, "--resume").exit_code == 0
    records = read_jsonl_records(RunOutput(out, False, False).log)
    events = EventAccumulator(str(sidecar(out, ".tb")), size_guidance={"scalars": 0})
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("loss")]
    assert [s for s, _ in logged] == [1, 2, 3, 4, 5, 6]  # the first run's step 5 purged, the resumed one kept
    assert [v for _, v in logged] == pytest.approx([r["loss"] for r in records], rel=1e-6)


def test_evaluate_shots_report_to_csv_has_one_run_per_cell(tmp_path):
    init = tmp_path / "p.safetensors"
    assert bmtpt(*SOURCE, "--steps", "2", "--out", init).exit_code == 0
    out = tmp_path / "fewshot.json"
    result = bmtpt("evaluate", "--shots", "4", "--init", init, "--tasks", "demo_sentiment", "--seeds", "0,1",
                   "--steps", "3", "--report-to", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    rows = _csv_rows(sidecar(out, ".csv"))  # the seeds run together (as the grid's cells), their steps interleave
    steps = {}
    for row in rows:
        steps.setdefault(row["run"], []).append(row["step"])
    assert steps == {f"bmtpt/k4/demo_sentiment/seed{seed}": ["1", "2", "3"] for seed in (0, 1)}


def test_report_to_without_training_is_refused_in_one_line(tmp_path):
    result = bmtpt("evaluate", "--prompts", tmp_path / "x.safetensors", "--report-to", "csv")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "--report-to" in result.stderr and "--shots" in result.stderr


@pytest.mark.parametrize("backend", ["mlflow", "wandb"])
def test_missing_optional_backend_names_the_extra(tmp_path, monkeypatch, backend):
    monkeypatch.setitem(sys.modules, backend, None)  # as if not installed: `import` fails
    out = tmp_path / "p.safetensors"
    result = bmtpt(*SOURCE, "--report-to", backend, "--out", out)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and f"pip install 'bmtpt[{backend}]'" in message
    assert list(tmp_path.iterdir()) == []  # refused before anything is written


def test_mlflow_backend_gets_settings_and_metrics(tmp_path, monkeypatch):
    calls = []
    fake = types.SimpleNamespace(
        start_run=lambda **kw: calls.append(("start_run", kw)),
        log_params=lambda params: calls.append(("log_params", params)),
        log_metrics=lambda metrics, step: calls.append(("log_metrics", metrics, step)),
        set_tag=lambda *a: calls.append(("set_tag", a)),
        end_run=lambda status: calls.append(("end_run", status)),
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    out = tmp_path / "p.safetensors"
    result = bmtpt(*SOURCE, "--report-to", "mlflow", "--out", out)
    assert result.exit_code == 0, result.output
    records = read_jsonl_records(RunOutput(out, False, False).log)
    assert calls[0][0] == "start_run" and calls[1][0] == "log_params" and calls[1][1]["particles"] == "2"
    metrics = [call for call in calls if call[0] == "log_metrics"]
    assert [(m[2], m[1]["loss"]) for m in metrics] == [(r["step"], r["loss"]) for r in records]
    assert calls[-1] == ("end_run", "FINISHED")


def test_fewshot_grid_report_to_csv_has_one_run_per_cell(tmp_path):
    init = tmp_path / "p.safetensors"
    assert bmtpt(*SOURCE, "--steps", "2", "--prompt-length", "8", "--out", init).exit_code == 0
    out = tmp_path / "grid"
    result = bmtpt("fewshot", "--steps", "2", "--batch-size", "4", "--prompt-length", "8", "--tasks", "demo_sentiment",
                   "--methods", "pt,bmtpt", "--shots", "4", "--seeds", "1", "--particles", init,
                   "--report-to", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    rows = _csv_rows(sidecar(out, ".csv"))
    assert [(row["run"], row["step"]) for row in rows] == [
        (f"{method}/k4/demo_sentiment/seed0", str(step)) for method in ("pt", "bmtpt") for step in (1, 2)
    ]


def test_transfer_matrix_tune_report_to_csv_has_one_run_per_tuning_run(tmp_path):
    from test_transfer_matrix import make_prompts_dir

    make_prompts_dir(tmp_path / "prompts", ["demo_rte", "demo_nli"])
    out = tmp_path / "transfer"
    result = bmtpt("transfer-matrix", "--prompts-dir", tmp_path / "prompts", "--max-source-length", "48", "--tune", "2",
                   "--batch-size", "4", "--report-to", "csv", "--out", out)
    assert result.exit_code == 0, result.output
    runs = [row["run"] for row in _csv_rows(sidecar(out, ".csv"))]
    assert sorted(set(runs)) == sorted(f"{source} -> {target}" for target in ("demo_rte", "demo_nli")
                                       for source in ("random init", "demo_rte", "demo_nli"))
    assert len(runs) == 6 * 2


def test_wandb_backend_gets_config_and_records(tmp_path, monkeypatch):
    runs = []

    class Run:
        def __init__(self, **kwargs):
            self.init, self.logged, self.finished = kwargs, [], None
            runs.append(self)

        def log(self, values):
            self.logged.append(values)

        def finish(self, exit_code):
            self.finished = exit_code

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: Run(**kw)))
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    out = tmp_path / "p.safetensors"
    result = bmtpt(*SOURCE, "--report-to", "wandb", "--out", out)
    assert result.exit_code == 0, result.output
    (run,) = runs
    assert run.init["project"] == "mine" and run.init["config"]["particles"] == 2
    records = read_jsonl_records(RunOutput(out, False, False).log)
    assert [(v["step"], v["loss"]) for v in run.logged] == [(r["step"], r["loss"]) for r in records]
    assert run.finished == 0


def test_a_folder_where_the_csv_goes_is_refused_in_one_line(tmp_path):
    out = tmp_path / "p.safetensors"
    sidecar(out, ".csv").mkdir()
    result = bmtpt(*SOURCE, "--report-to", "csv", "--out", out)
    assert result.exit_code == 2
    assert "is a directory" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("error:")
