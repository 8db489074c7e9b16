"""A run's side files (checkpoint, step log, few-shot cells, lock) are named by appending to the whole
output name, and an output whose name is a side file of another output is refused (issue 27, items 1-2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.outputs import RunOutput


@pytest.mark.parametrize("name", ["p.safetensors", "p.ckpt", "run.1", "exp-lr0.3", "particles"])
def test_side_files_append_to_the_whole_output_name(tmp_path, name):
    output = RunOutput(tmp_path / name, force=False, resume=False)
    assert output.checkpoint == tmp_path / f"{name}.ckpt"
    assert output.log == tmp_path / f"{name}.log.jsonl"
    assert output.cells == tmp_path / f"{name}.cells.jsonl"
    assert output.lock == tmp_path / f"{name}.lock"


def test_outputs_differing_after_the_last_dot_have_their_own_side_files(tmp_path):
    names = ["run.1", "run.2", "exp-lr0.3", "exp-lr0.1", "particles", "particles.safetensors"]
    side = [RunOutput(tmp_path / n, False, False) for n in names]
    files = [f for o in side for f in (o.checkpoint, o.log, o.cells, o.lock)]
    assert len(set(files)) == len(files)


@pytest.mark.parametrize("suffix", [".ckpt", ".log.jsonl", ".cells.jsonl", ".lock"])
@pytest.mark.parametrize("force", [False, True])
def test_an_output_named_as_another_outputs_side_file_is_refused(tmp_path, suffix, force):
    (tmp_path / "x.safetensors").write_bytes(b"another run's artifact")
    out = tmp_path / f"x.safetensors{suffix}"
    with pytest.raises(BmtptError) as excinfo:
        RunOutput(out, force=force, resume=False).check()
    message = str(excinfo.value)
    assert "\n" not in message and str(out) in message and "x.safetensors" in message


def test_an_output_whose_side_file_is_another_runs_output_is_refused(tmp_path):
    (tmp_path / "x.ckpt").write_bytes(b"the artifact of a run with --out x.ckpt")
    (tmp_path / "x.ckpt.log.jsonl").write_text('{"step": 1}\n')  # ... and that run's step log
    for force in (False, True):
        with pytest.raises(BmtptError) as excinfo:
            RunOutput(tmp_path / "x", force=force, resume=False).check()
        assert "x.ckpt" in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert (tmp_path / "x.ckpt").read_bytes() == b"the artifact of a run with --out x.ckpt"


def test_an_output_ending_in_ckpt_with_no_such_neighbour_is_fine(tmp_path):
    RunOutput(tmp_path / "p.ckpt", force=False, resume=False).check()


def test_resume_names_a_checkpoint_an_older_bmtpt_wrote(tmp_path):
    (tmp_path / "p.ckpt").write_bytes(b"an older version's checkpoint of p.safetensors")
    with pytest.raises(BmtptError) as excinfo:
        RunOutput(tmp_path / "p.safetensors", force=False, resume=True).check()
    message = str(excinfo.value)
    assert "\n" not in message and "p.ckpt'" in message and "p.safetensors.ckpt" in message and "rename" in message


def test_the_directory_is_fsynced_after_a_rename(tmp_path, monkeypatch):
    from bmtpt_cli.runtime import files

    synced = []
    monkeypatch.setattr(files, "fsync_directory", lambda directory: synced.append(Path(directory)))
    files.write_text_atomic(tmp_path / "a.json", "{}")
    assert synced == [tmp_path]
    with files.staged_directory(tmp_path / "out", force=False) as staging:
        (staging / "x").write_text("1")
    assert tmp_path in synced[1:] and (tmp_path / "out" / files.OUTPUT_MARKER).is_file()


def test_a_folder_of_the_same_stem_is_no_collision(tmp_path):
    (tmp_path / "model").mkdir()  # e.g. a local model folder: folders have no side files beside them
    RunOutput(tmp_path / "model.ckpt", force=False, resume=False).check()
