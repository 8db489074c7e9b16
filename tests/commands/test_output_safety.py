"""Output safety from the command line (issue 27): side-file names, --force only from the command
line, what --force may replace, a full disk, leftovers of killed runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clihelpers import FAST, bmtpt, listing, snapshot


def test_an_output_named_ckpt_is_kept(tmp_path):
    """Issue 27 item 1: `--out p.ckpt` used to be deleted at the end as if it were the checkpoint."""
    out = tmp_path / "p.ckpt"
    result = bmtpt("source", *FAST["source"], "--out", out)
    assert result.exit_code == 0, result.stderr
    assert listing(tmp_path) == ["p.ckpt", "p.ckpt.log.jsonl"]


def test_outputs_differing_after_the_last_dot_keep_their_own_logs(tmp_path):
    """Issue 27 item 2: run.1 and run.2 shared one checkpoint and one step log."""
    for name in ("run.1", "run.2"):
        assert bmtpt("source", *FAST["source"], "--out", tmp_path / name).exit_code == 0
    assert listing(tmp_path) == ["run.1", "run.1.log.jsonl", "run.2", "run.2.log.jsonl"]


def test_an_output_named_as_a_side_file_of_an_existing_output_is_refused(tmp_path):
    out = tmp_path / "x.safetensors"
    assert bmtpt("source", *FAST["source"], "--out", out).exit_code == 0
    before = snapshot(tmp_path)
    result = bmtpt("source", *FAST["source"], "--out", f"{out}.log.jsonl", "--force")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "x.safetensors" in result.stderr
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------- --force only from the command line
def _kept(tmp_path: Path) -> Path:
    out = tmp_path / "p.safetensors"
    out.write_bytes(b"an earlier run's artifact")
    return out


def test_force_from_the_environment_is_refused(tmp_path, monkeypatch):
    """Issue 27 item 3: BMTPT_FORCE=1 used to overwrite outputs with no --force typed."""
    out = _kept(tmp_path)
    monkeypatch.setenv("BMTPT_FORCE", "1")
    result = bmtpt("source", *FAST["source"], "--out", out)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "BMTPT_FORCE" in result.stderr and "--force" in result.stderr
    assert out.read_bytes() == b"an earlier run's artifact"
    assert bmtpt("source", *FAST["source"], "--out", out, "--force").exit_code == 0  # the flag still works


@pytest.mark.parametrize("where", ["force = true\n", "[source]\nforce = true\n"])
def test_force_from_a_preset_is_refused(tmp_path, where):
    out = _kept(tmp_path)
    preset = tmp_path / "mine.toml"
    preset.write_text('model = "tiny"\nprompt_length = 4\n' + where)
    result = bmtpt("source", *FAST["source"], "--preset", preset, "--out", out)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "force" in result.stderr and "command line" in result.stderr
    assert out.read_bytes() == b"an earlier run's artifact"


def test_a_print_config_file_made_with_force_does_not_carry_it(tmp_path):
    printed = bmtpt("source", *FAST["source"], "--force", "--print-config")
    assert printed.exit_code == 0
    assert not [line for line in printed.stdout.splitlines() if line.startswith("force")]
    preset = tmp_path / "saved.toml"
    preset.write_text(printed.stdout)
    out = _kept(tmp_path)
    result = bmtpt("source", "--preset", preset, "--out", out)
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert out.read_bytes() == b"an earlier run's artifact"


def test_the_model_cards_repeat_this_run_preset_does_not_carry_force():
    from bmtpt_cli.export.card import command_line, preset_text

    config = {"steps": 4, "force": True, "out": "p.safetensors"}
    assert "force" not in preset_text("adapt", config) and "--force" not in command_line("adapt", config)


# --------------------------------------------------------------------- what --force may replace (item 5)
def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_force_never_replaces_a_fifo(tmp_path):
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    message = _one_line(bmtpt("source", *FAST["source"], "--out", fifo, "--force"))
    assert "regular file" in message and str(fifo) in message
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and listing(tmp_path) == ["fifo"]


def test_force_never_replaces_a_link_to_a_device(tmp_path):
    link = tmp_path / "null"
    link.symlink_to("/dev/null")
    message = _one_line(bmtpt("source", *FAST["source"], "--out", link, "--force"))
    assert "regular file" in message
    assert link.is_symlink() and os.readlink(link) == "/dev/null" and listing(tmp_path) == ["null"]


def test_an_input_given_as_the_output_is_refused(tmp_path):
    init = tmp_path / "p.safetensors"
    assert bmtpt("source", *FAST["source"], "--out", init).exit_code == 0
    before = snapshot(tmp_path)
    message = _one_line(bmtpt("adapt", *FAST["adapt"], "--init", init, "--out", init, "--force"))
    assert "--init" in message and "input" in message
    message = _one_line(bmtpt("evaluate", "--prompts", init, "--out", tmp_path / "." / "p.safetensors", "--force"))
    assert "--prompts" in message and "input" in message
    assert snapshot(tmp_path) == before


def test_export_force_replaces_only_a_directory_bmtpt_wrote(tmp_path):
    from bmtpt_cli.runtime.files import OUTPUT_MARKER

    init = tmp_path / "p.safetensors"
    assert bmtpt("source", *FAST["source"], "--out", init).exit_code == 0
    prompts = tmp_path / "prompts.safetensors"
    assert bmtpt("adapt", *FAST["adapt"], "--init", init, "--tasks", "demo_rte", "--out", prompts).exit_code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    message = _one_line(bmtpt("export", "--prompts", prompts, "--out", mine, "--force"))
    assert "bmtpt did not write" in message and str(mine) in message
    assert listing(mine) == ["thesis.tex"]
    written = tmp_path / "export"
    assert bmtpt("export", "--prompts", prompts, "--out", written).exit_code == 0
    assert (written / OUTPUT_MARKER).is_file()
    assert bmtpt("export", "--prompts", prompts, "--out", written, "--force").exit_code == 0  # its own: replaced


def test_transfer_matrix_force_replaces_only_a_folder_bmtpt_wrote(tmp_path):
    from bmtpt_cli.errors import BmtptError
    from bmtpt_cli.transfer.write import staged_folder

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(BmtptError, match="bmtpt did not write"):
        with staged_folder(out, force=True) as folder:
            (folder / "demo.csv").write_text("1")
    assert listing(out) == ["notes.txt"]
