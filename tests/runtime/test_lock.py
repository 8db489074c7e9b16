"""The output lock `<out>.lock` (issue 27 item 4): never two owners, even among processes started
together on a stale lock; created with its content; released only by its owner."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.files import OutputLock

TRIALS, PROCESSES = 50, 4


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _contend(out, barrier, holders, overlaps, acquired) -> None:
    barrier.wait()
    try:
        with OutputLock(out):
            with holders.get_lock():
                holders.value += 1
                if holders.value > 1:
                    overlaps.value += 1
            with acquired.get_lock():
                acquired.value += 1
            time.sleep(0.02)  # hold it a while: a second owner shows as an overlap
            with holders.get_lock():
                holders.value -= 1
    except BmtptError:
        pass  # refused: another process holds it
    os._exit(0)


def _leave(lock: Path, kind: str, dead: int) -> None:
    """What a trial starts from: no lock, a dead run's lock, or an empty one left long ago."""
    if kind == "dead":
        lock.write_text(json.dumps({"pid": dead, "host": os.uname().nodename}))
    elif kind == "empty":
        lock.write_bytes(b"")
        old = time.time() - 60
        os.utime(lock, (old, old))


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_processes_started_together_never_both_hold_the_lock(tmp_path, monkeypatch, links):
    if not links:  # the fallback for file systems without hard links: create, then write
        import errno

        def no_links(*args, **kwargs):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    context = multiprocessing.get_context("fork")
    dead = _dead_pid()
    overlaps, acquired = context.Value("i", 0), context.Value("i", 0)
    failures = []
    for trial in range(TRIALS):
        out = tmp_path / f"p{trial}.safetensors"
        lock = Path(f"{out}.lock")
        _leave(lock, ("none", "dead", "empty")[trial % 3], dead)
        barrier, holders = context.Barrier(PROCESSES), context.Value("i", 0)
        before = acquired.value
        processes = [context.Process(target=_contend, args=(out, barrier, holders, overlaps, acquired)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(30)
        if acquired.value == before:
            failures.append(f"trial {trial}: nobody took the lock")
        if os.path.lexists(lock):
            failures.append(f"trial {trial}: lock left behind ({lock.read_bytes()!r})")
    assert overlaps.value == 0, f"two owners at once in {overlaps.value} of {TRIALS} trials"
    assert not failures, failures[:5]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary lock files left


def test_the_lock_is_created_with_its_content(tmp_path):
    out = tmp_path / "p.safetensors"
    with OutputLock(out) as lock:
        owner = json.loads(Path(f"{out}.lock").read_text())
        assert owner["pid"] == os.getpid() and lock.path == Path(f"{out}.lock")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p.safetensors.lock"]
    assert list(tmp_path.iterdir()) == []


def test_a_lock_is_released_only_by_its_owner(tmp_path):
    out = tmp_path / "p.safetensors"
    lock = Path(f"{out}.lock")
    with OutputLock(out):
        lock.unlink()  # someone deleted it by hand, and another run took it
        lock.write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename}))
    assert json.loads(lock.read_text())["pid"] == os.getppid()  # still there: not ours to remove


def test_a_fresh_empty_lock_is_not_taken_as_stale(tmp_path):
    out = tmp_path / "p.safetensors"
    lock = Path(f"{out}.lock")
    lock.write_bytes(b"")  # a lock being written this moment (or by an older bmtpt)
    with pytest.raises(BmtptError) as excinfo:
        OutputLock(out).__enter__()
    assert "\n" not in str(excinfo.value) and str(lock) in str(excinfo.value)
    assert lock.read_bytes() == b""
    old = time.time() - 60
    os.utime(lock, (old, old))
    with OutputLock(out):  # left long ago: its writer died before writing a word
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_lock_path_that_is_a_directory_is_one_line(tmp_path):
    out = tmp_path / "p.safetensors"
    Path(f"{out}.lock").mkdir()
    with pytest.raises(BmtptError) as excinfo:
        OutputLock(out).__enter__()
    assert "\n" not in str(excinfo.value) and f"{out}.lock" in str(excinfo.value) and "directory" in str(excinfo.value)


def test_taking_the_lock_removes_the_temporary_files_of_dead_runs(tmp_path):
    out = tmp_path / "p.safetensors"
    dead, live = _dead_pid(), os.getppid()
    gone = [f".p.safetensors.{dead}.abcd_123.tmp", f".p.safetensors.ckpt.{dead}.x1y2z3w4.tmp",
            f".p.safetensors.lock.{dead}.qwertyui.tmp", ".p.safetensors.legacy01.tmp"]
    kept = [f".p.safetensors.{live}.abcd_123.tmp", ".p.safetensors.legacy02.tmp",  # a live writer's; a recent one
            f".other.safetensors.{dead}.abcd_123.tmp", f".p.safetensors.1.{dead}.abcd_123.tmp"]  # other outputs'
    for name in gone + kept:
        (tmp_path / name).write_bytes(b"part of a write")
    old = time.time() - 7200
    os.utime(tmp_path / ".p.safetensors.legacy01.tmp", (old, old))  # named before temporary names held the pid
    with OutputLock(out):
        left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(kept + ["p.safetensors.lock"])


def test_without_hard_links_the_lock_still_works(tmp_path, monkeypatch):
    import errno

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # e.g. a FAT or some FUSE file system
    out = tmp_path / "p.safetensors"
    lock = Path(f"{out}.lock")
    with OutputLock(out):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(BmtptError, match="another bmtpt run"):
            OutputLock(out).__enter__()
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    with OutputLock(out):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert listing_of(tmp_path) == []


def listing_of(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())
