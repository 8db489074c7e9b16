"""Safe file writes: atomic replacement, permissions, the overwrite check."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bmtpt_cli.errors import BmtptError
from clihelpers import assert_user_error, listing
from bmtpt_cli.runtime.files import atomic_write, check_writable, write_text_atomic


# --------------------------------------------------------------------------------- atomic_write
def test_atomic_write_failing_midway_keeps_the_old_file(tmp_path):
    path = tmp_path / "particles.safetensors"
    path.write_bytes(b"the previous, complete artifact")
    seen = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert tmp != path and tmp.parent == path.parent  # a temporary file beside the destination
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, write)
    assert seen, "the write callback was never called"
    assert path.read_bytes() == b"the previous, complete artifact"
    assert listing(tmp_path) == ["particles.safetensors"]  # no temporary file left behind


def test_atomic_write_replaces_the_content(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    atomic_write(path, lambda tmp: tmp.write_bytes(b"new content"))
    assert path.read_bytes() == b"new content"
    write_text_atomic(path, "even newer \u03b8\n")
    assert path.read_text(encoding="utf-8") == "even newer \u03b8\n"
    assert listing(tmp_path) == ["results.json"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_atomic_write_gives_new_files_the_usual_permissions(tmp_path, umask):
    path = tmp_path / "particles.safetensors"
    previous = os.umask(umask)
    try:
        atomic_write(path, lambda tmp: tmp.write_bytes(b"x"))
    finally:
        os.umask(previous)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~umask, oct(mode)
    assert mode != 0o600


def test_atomic_write_into_a_missing_directory(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "out.safetensors"
    with pytest.raises(BmtptError) as excinfo:
        atomic_write(path, lambda tmp: tmp.write_bytes(b"x"))
    assert "does not exist" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


# --------------------------------------------------------------------------------- check_writable
def test_check_writable_refuses_an_existing_file_without_force(tmp_path):
    path = tmp_path / "particles.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(BmtptError) as excinfo:
        check_writable(path, force=False)
    assert "--force" in assert_user_error(excinfo, path)
    check_writable(path, force=True)  # accepted with --force
    check_writable(tmp_path / "new.safetensors", force=False)  # a new file in an existing directory is fine


def test_check_writable_refuses_a_missing_directory(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(BmtptError) as excinfo:
        check_writable(missing / "particles.safetensors", force=True)
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(missing) in message and "does not exist" in message


def test_check_writable_refuses_a_directory_as_output(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    with pytest.raises(BmtptError):
        check_writable(out, force=True)
