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
    """The one error line (a progress bar may come before it), with exit code 2 and no traceback."""
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert "Traceback" not in result.output
    return errors[0]


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
    from bmtpt_cli.experiments.transfer.write import staged_folder

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(BmtptError, match="bmtpt did not write"):
        with staged_folder(out, force=True) as folder:
            (folder / "demo.csv").write_text("1")
    assert listing(out) == ["notes.txt"]


# --------------------------------------------------------------------- a full disk
def _no_temporaries(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".lock")]


@pytest.mark.parametrize("failure", ["oserror", "torch"])
def test_a_full_disk_is_one_line_and_keeps_the_old_output(tmp_path, monkeypatch, failure):
    import errno

    import torch

    out = _kept(tmp_path)
    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:  # the second checkpoint: the disk is full
            Path(f).write_bytes(b"PK\x03\x04 half a zip")
            if failure == "oserror":
                raise OSError(errno.ENOSPC, "No space left on device")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 14912 vs 14800")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    result = bmtpt("source", *FAST["source"], "--out", out, "--force")
    message = _one_line(result)
    assert "space" in message and str(tmp_path) in message
    assert out.read_bytes() == b"an earlier run's artifact"
    assert not _no_temporaries(tmp_path), listing(tmp_path)


def test_a_full_step_log_is_one_line(tmp_path, monkeypatch):
    import errno

    from bmtpt_cli.runtime import checkpoint

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.StepLog, "write", full)
    message = _one_line(bmtpt("source", *FAST["source"], "--out", tmp_path / "p.safetensors"))
    assert "space" in message
    assert not _no_temporaries(tmp_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (skipped where mounting is not allowed), filled up to its last 12 KiB."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        import gc

        gc.collect()  # a failed run's traceback may still hold a file open on it
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # never leave it mounted


def test_a_really_full_disk_leaves_the_old_output_and_no_lock(small_disk):
    out = small_disk / "p.safetensors"
    out.write_bytes(b"an earlier run's artifact")
    usage = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (usage.f_bavail * usage.f_frsize - 12 * 1024))
    result = bmtpt("source", *FAST["source"], "--out", out, "--force")
    message = _one_line(result)
    assert "space" in message
    assert out.read_bytes() == b"an earlier run's artifact"
    assert not _no_temporaries(small_disk), listing(small_disk)
    (small_disk / "filler").unlink()
    usage = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (usage.f_bavail * usage.f_frsize))  # not a byte left: not even for the lock
    message = _one_line(bmtpt("source", *FAST["source"], "--out", out, "--force"))
    assert "space" in message
    assert out.read_bytes() == b"an earlier run's artifact" and not _no_temporaries(small_disk)


# --------------------------------------------------------------------- a kill after the artifact's rename
def test_a_checkpoint_left_beside_a_finished_output_says_how_to_finish(tmp_path, monkeypatch):
    """A run killed between writing its artifact and removing its checkpoint leaves both: the rerun
    says so and how to finish (--resume rewrites the artifact from that last checkpoint and removes it)."""
    out = tmp_path / "p.safetensors"
    real_unlink = Path.unlink

    def killed(self, *args, **kwargs):
        if self.name.endswith(".ckpt"):
            raise KeyboardInterrupt  # the kill, just after the artifact's rename
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", killed)
    assert bmtpt("source", *FAST["source"], "--out", out).exit_code != 0
    monkeypatch.setattr(Path, "unlink", real_unlink)
    checkpoint = tmp_path / "p.safetensors.ckpt"
    assert out.is_file() and checkpoint.is_file()
    message = _one_line(bmtpt("source", *FAST["source"], "--out", out))
    assert "already exists" in message and str(checkpoint) in message and "--resume" in message
    assert bmtpt("source", *FAST["source"], "--out", out, "--resume").exit_code == 0
    assert out.is_file() and not checkpoint.exists()
