"""Writing files safely: atomic writes, the overwrite check, one run per output (`<out>.lock`).

Every file bmtpt writes goes through `atomic_write`: a temporary file in the same directory renamed
into place, so an interrupted write leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bmtpt_cli.errors import BmtptError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    directory = check_output_directory(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _cannot_write(directory, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600 files; give the new file the usual permissions
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file atomically (see `atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


SIDE_FILES = {".ckpt": "checkpoint", ".log.jsonl": "step log", ".cells.jsonl": "few-shot cells file", ".lock": "lock"}
"""The files a run keeps beside its output `NAME`, named `NAME` + suffix (the whole name, so `run.1` and
`run.2`, or `p` and `p.safetensors`, never share one, and `--out p.ckpt` has the checkpoint `p.ckpt.ckpt`)."""


def side_file(out: Path, suffix: str) -> Path:
    """The file beside `out` named by appending `suffix` to its whole name: p.safetensors → p.safetensors.ckpt."""
    return Path(f"{out}{suffix}")


def check_side_names(out: Path, flag: str = "--out") -> None:
    """Refuse an output named as a side file of an existing output (`x.safetensors.ckpt` beside
    `x.safetensors` or its lock), or one whose own side file would be another run's output (`--out x`
    beside the output `x.ckpt` of a run with `--out x.ckpt`, which `x`'s checkpoint would overwrite)."""
    out = Path(out)
    for suffix, what in SIDE_FILES.items():
        if out.name.endswith(suffix) and len(out.name) > len(suffix):
            base = out.with_name(out.name[: -len(suffix)])
            if os.path.lexists(base) or os.path.lexists(side_file(base, ".lock")):
                raise BmtptError(f"'{out}' is the name of the {what} of the output '{base}': choose another {flag}")
        side = side_file(out, suffix)
        if os.path.lexists(side) and any(os.path.lexists(side_file(side, other)) for other in SIDE_FILES):
            raise BmtptError(
                f"'{side}', where this run keeps its {what}, is another run's output (its side files are beside it): "
                f"choose another {flag}"
            )


def check_writable(path: Path, *, force: bool, flag: str = "--out") -> None:
    """Refuse to overwrite an existing output unless `force`; refuse a missing or read-only directory,
    and a name that collides with a side file (`check_side_names`)."""
    path = Path(path)
    if path.is_dir():
        raise BmtptError(f"'{path}' is a directory: give {flag} a file path")
    check_side_names(path, flag)
    if path.exists() and not force:
        raise BmtptError(f"'{path}' already exists: pass --force to overwrite it or choose another {flag}")
    check_output_directory(path, flag)


def check_output_directory(path: Path, flag: str = "--out") -> Path:
    """The directory an output goes to, refused in one line when it is missing, a file, or read-only."""
    directory = Path(path).parent if str(Path(path).parent) else Path(".")
    if not directory.exists():
        raise BmtptError(f"output directory '{directory}' does not exist: create it or choose another {flag}")
    if not directory.is_dir():
        raise BmtptError(f"'{directory}' is a file, not a directory: choose another {flag}")
    if not os.access(directory, os.W_OK):
        raise BmtptError(f"output directory '{directory}' is not writable: choose another {flag}")
    return directory


def _cannot_write(directory: Path, exc: OSError, flag: str = "--out") -> BmtptError:
    return BmtptError(f"cannot create files in '{directory}' ({exc.strerror or exc}): choose another {flag}")


class OutputLock:
    """`<out>.lock`, held while a run writes `out`, so a second run on the same output refuses.

    The lock records the owner's pid and host. A lock whose process is gone (a killed run on this
    host) is stale and taken over; one from another host is respected, and the message says how to
    clear it by hand.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = Path(f"{out}.lock")

    def __enter__(self) -> OutputLock:
        import json
        import socket

        if self.out.is_dir():
            raise BmtptError(f"'{self.out}' is a directory: give --out a file path")
        directory = check_output_directory(self.out)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None or (owner.get("host") == socket.gethostname() and not _pid_alive(owner.get("pid"))):
                    self.path.unlink(missing_ok=True)  # stale: its run is gone
                    continue
                raise BmtptError(
                    f"another bmtpt run (pid {owner.get('pid')} on {owner.get('host')}) is writing '{self.out}': "
                    f"wait for it, choose another --out, or delete '{self.path}' if that run is gone"
                ) from None
            except OSError as exc:  # e.g. /proc, a read-only mount, a directory we may not write in
                raise _cannot_write(directory, exc) from None
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
            return self
        raise BmtptError(f"could not take the lock '{self.path}': delete it if no bmtpt run is writing '{self.out}'")

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)

    def _owner(self) -> dict | None:
        import json

        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # unreadable or half-written: its writer died
        return owner if isinstance(owner, dict) else None


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main_process_lock(out: Path, is_main: bool):
    """The output's lock, held by the main process only (the others write nothing)."""
    import contextlib

    return OutputLock(out) if is_main else contextlib.nullcontext()


def check_replaceable_directory(out: Path, *, force: bool, flag: str = "--out") -> None:
    """Refuse `out` when it is a file, a non-empty directory without `force`, or its parent is unusable."""
    out = Path(out)
    here = Path.cwd()
    if not out.name or out.resolve() in (here, *here.parents):
        raise BmtptError(f"--out '{out}' is the directory you are in (or above it), which the output would replace: give a new directory")
    if out.exists() and not out.is_dir():
        raise BmtptError(f"'{out}' is a file: give {flag} a directory path (the output is several files)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BmtptError(f"'{out}' already exists and is not empty: pass --force to replace it or choose another {flag}")
    check_output_directory(out, flag)


@contextlib.contextmanager
def staged_directory(out: Path, *, force: bool, flag: str = "--out") -> Iterator[Path]:
    """A fresh hidden directory beside `out` to fill; when the block ends without error it becomes `out`.

    A replaced `out` is first moved aside and deleted only once the new one is in place. On an error
    (or Ctrl-C) the staging directory is removed and `out` is left as it was.
    """
    out = Path(out)
    check_replaceable_directory(out, force=force, flag=flag)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise BmtptError(f"cannot create a directory in '{parent}' ({exc.strerror or exc}): choose another {flag}") from None
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 directories; give the output the usual permissions
        old = None
        if out.exists():
            check_replaceable_directory(out, force=force, flag=flag)  # it may have appeared while we wrote
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.replace(out, old / out.name)
        try:
            os.replace(staging, out)
        except OSError as exc:
            if old is not None:
                os.replace(old / out.name, out)  # put the previous output back
            raise BmtptError(f"could not move the output into '{out}' ({exc.strerror or exc}): choose another {flag}") from None
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
