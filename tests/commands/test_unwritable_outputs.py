"""An output that cannot be written is a one-line error with exit code 2, and nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from clihelpers import bmtpt, snapshot

COMMANDS = (["source"], ["adapt", "--init", "random"], ["evaluate"], ["transfer-matrix"], ["fewshot", "--methods", "pt"])


def _assert_refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in result.output, message
    for word in words:
        assert word in message, message


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_output_under_proc(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _assert_refused(bmtpt(*command, "--out", "/proc/x.safetensors"), "'/proc'", "--out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_output_whose_parent_is_a_file(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").write_text("a file")
    before = snapshot(tmp_path)
    _assert_refused(bmtpt(*command, "--out", "notes/x.safetensors"), "'notes' is a file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_output_in_a_missing_directory(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _assert_refused(bmtpt(*command, "--out", "no/such/x.safetensors"), "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_an_output_in_a_read_only_directory_as_an_ordinary_user():
    """As root every directory is writable, so the command runs as `nobody` in a directory it cannot write."""
    workdir = Path(tempfile.mkdtemp(prefix="bmtpt-readonly-"))
    try:
        (workdir / "ro").mkdir()
        os.chmod(workdir, 0o755)
        os.chmod(workdir / "ro", 0o555)
        # Everything the command reads must be readable by `nobody`: the preset is copied beside the
        # output, and the modules are imported (and the settings resolved once) before dropping root.
        preset = workdir / "demo.toml"
        preset.write_text((Path(__file__).resolve().parents[2] / "presets" / "demo.toml").read_text())
        os.chmod(preset, 0o644)
        drop = "os.setgid(65534); os.setuid(65534)\n" if os.geteuid() == 0 else ""
        script = (
            "import os, sys, shutil, bmtpt_cli.jobs.source\n"
            "from bmtpt_cli.app import app\n"
            "app(['source', '--preset', sys.argv[2], '--print-config'], standalone_mode=False)\n" + drop +
            "sys.argv = ['bmtpt', 'source', '--preset', sys.argv[2], '--out', sys.argv[1]]\n"
            "app()\n"
        )
        env = {**os.environ, "HOME": str(workdir), "HF_HUB_OFFLINE": "1"}
        result = subprocess.run(
            [sys.executable, "-c", script, str(workdir / "ro" / "p.safetensors"), str(preset)],
            capture_output=True, text=True, timeout=120, env=env, cwd=workdir,
        )
        assert result.returncode == 2, result.stderr
        assert "is not writable" in result.stderr and "Traceback" not in result.stderr
        assert list((workdir / "ro").iterdir()) == []
    finally:
        os.chmod(workdir / "ro", 0o755)
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
