"""Extending a finished run (issue 26, Small): `--keep-checkpoint` keeps the final checkpoint, and
`--resume --steps N` with a larger N continues from it; `steps` is the one setting that may change
(and only grow), the schedule decays to 0 at the new last step, and the step log records the change."""

from __future__ import annotations

import pytest

from bmtpt_cli.runtime.checkpoint import read_jsonl_records
from bmtpt_cli.runtime.outputs import RunOutput
from clihelpers import bmtpt

SOURCE = ["source", "--particles", "2", "--checkpoint-every", "2", "--warmup-steps", "1"]
ADAPT = ["adapt", "--eval-every", "2", "--batch-size", "4", "--warmup-steps", "1"]


@pytest.fixture(scope="module")
def init(tmp_path_factory):
    path = tmp_path_factory.mktemp("init") / "p.safetensors"
    assert bmtpt(*SOURCE, "--steps", "2", "--out", path).exit_code == 0
    return path


@pytest.mark.parametrize("command", ["source", "adapt"])
def test_a_finished_run_extends_with_resume_and_more_steps(tmp_path, init, command):
    argv = SOURCE if command == "source" else [*ADAPT, "--init", str(init)]
    out = tmp_path / "run.safetensors"
    output = RunOutput(out, False, True)
    first = bmtpt(*argv, "--steps", "4", "--keep-checkpoint", "--out", out)
    assert first.exit_code == 0, first.output
    assert output.checkpoint.is_file()  # kept: the run can be extended
    before = read_jsonl_records(output.log)

    result = bmtpt(*argv, "--steps", "8", "--resume", "--out", out)
    assert result.exit_code == 0, result.output
    records = read_jsonl_records(output.log)
    assert [r["step"] for r in records] == list(range(1, 9))
    assert records[:4] == before  # the first run's steps are kept as they were
    assert records[4]["steps_extended"]["was"] == 4 and records[4]["steps_extended"]["now"] == 8
    base = 0.3  # --lr / --lr-shared default; warm-up 1 step, then linear decay to 0 at step 8
    assert records[4]["lr"] == pytest.approx(base * (8 - 4) / (8 - 1))
    assert records[-1]["lr"] == pytest.approx(base * (8 - 7) / (8 - 1))
    assert not output.checkpoint.exists()  # no --keep-checkpoint this time: the artifact replaces it


def test_extending_changes_only_steps(tmp_path):
    out = tmp_path / "run.safetensors"
    assert bmtpt(*SOURCE, "--steps", "4", "--keep-checkpoint", "--out", out).exit_code == 0
    result = bmtpt(*SOURCE, "--steps", "8", "--seed", "1", "--resume", "--out", out)
    assert result.exit_code == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error:") and "'seed' was 0, now 1" in message


def test_without_keep_checkpoint_a_finished_run_says_how_to_extend(tmp_path):
    out = tmp_path / "run.safetensors"
    assert bmtpt(*SOURCE, "--steps", "2", "--out", out).exit_code == 0
    result = bmtpt(*SOURCE, "--steps", "4", "--resume", "--out", out)
    assert result.exit_code == 2
    assert "--keep-checkpoint" in result.stderr and "\n" not in result.stderr.strip()
