"""Writing files safely: atomic writes, the overwrite check, one run per output (`<out>.lock`).

Every file bmtpt writes goes through `atomic_write`: a temporary file in the same directory renamed
into place, so an interrupted write leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bmtpt_cli.errors import BmtptError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    directory = check_output_directory(path)
    check_regular(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _cannot_write(directory, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            write(tmp)
            tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600 files; give the new file the usual permissions
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        except (OSError, RuntimeError) as exc:
            if not disk_full(exc):
                raise
            raise BmtptError(
                f"no space left on the device to write '{path}' ({_reason(exc)}): free some space and rerun; "
                "the files already there are intact"
            ) from None
        os.replace(tmp, path)
        fsync_directory(directory)  # the rename itself survives a power cut
    finally:
        tmp.unlink(missing_ok=True)


def disk_full(exc: BaseException) -> bool:
    """Whether a write failed for want of space: ENOSPC or EDQUOT, or torch.save's zip writer giving up
    on a short write ("unexpected pos")."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(s in text for s in ("unexpected pos", "No space left", "file write failed"))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc).strip()
    return "a short write, torch: " + (text[text.find("unexpected pos"):] if "unexpected pos" in text else text[-80:])


def temporary_prefix(path: Path) -> str:
    """How a temporary file beside `path` begins: `.NAME.PID.` (then mkstemp's letters and `.tmp`), so the
    leftovers of a killed run can be told from a live writer's (`remove_dead_temporaries`)."""
    return f".{Path(path).name}.{os.getpid()}."


LEGACY_TEMPORARY_AGE = 3600.0
"""A temporary file named without a pid (bmtpt before issue 27) is a dead run's once this old (seconds)."""


def remove_dead_temporaries(out: Path) -> list[Path]:
    """Remove the temporary files (`.NAME.PID.XXXXXXXX.tmp`) that killed runs left beside `out` and its
    side files (NAME = the output's or a side file's name) whose process is gone, and those named
    without a pid (`.NAME.XXXXXXXX.tmp`) older than `LEGACY_TEMPORARY_AGE`. Called by the run holding
    the output's lock, so no live run writes these names (a live writer's pid keeps its file)."""
    import re

    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    names = [out.name, *(f"{out.name}{suffix}" for suffix in SIDE_FILES)]
    patterns = [re.compile(re.escape(f".{name}.") + r"(?:(\d+)\.)?[a-z0-9_]{8}\.tmp") for name in names]
    removed = []
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(f".{out.name}.") and p.name.endswith(".tmp")]
    except OSError:
        return removed
    for path in candidates:
        for pattern in patterns:
            match = pattern.fullmatch(path.name)
            if match is None:
                continue
            try:
                dead = (not _pid_alive(int(match[1]))) if match[1] else time.time() - path.lstat().st_mtime > LEGACY_TEMPORARY_AGE
                if dead and path.is_file() and not path.is_symlink():
                    path.unlink()
                    removed.append(path)
            except OSError:
                pass
            break
    return removed


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename or a new name in it) to disk; a no-op where not supported."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
            if (os.path.lexists(base) and not base.is_dir()) or os.path.lexists(side_file(base, ".lock")):  # a folder has no side files
                raise BmtptError(f"'{out}' is the name of the {what} of the output '{base}': choose another {flag}")
        side = side_file(out, suffix)
        if os.path.lexists(side) and any(os.path.lexists(side_file(side, other)) for other in SIDE_FILES):
            raise BmtptError(
                f"'{side}', where this run keeps its {what}, is another run's output (its side files are beside it): "
                f"choose another {flag}"
            )


def check_regular(path: Path, flag: str = "--out") -> None:
    """Refuse a path that exists as something other than a regular file (a device, FIFO, socket, or a
    link to one or to nothing): bmtpt never replaces one, even with --force."""
    if os.path.lexists(path) and not Path(path).is_file():
        raise BmtptError(
            f"'{path}' is not a regular file (a device, FIFO, socket or broken link): bmtpt replaces only regular "
            f"files, even with --force; choose another {flag}"
        )


def check_writable(path: Path, *, force: bool, flag: str = "--out") -> None:
    """Refuse to overwrite an existing output unless `force`; refuse a missing or read-only directory,
    and a name that collides with a side file (`check_side_names`)."""
    path = Path(path)
    if path.is_dir():
        raise BmtptError(f"'{path}' is a directory: give {flag} a file path")
    check_regular(path, flag)
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


STALE_EMPTY_SECONDS = 5.0
"""An empty or unreadable lock is taken as stale only once it is this old (it may be one being written)."""


class OutputLock:
    """`<out>.lock`, held while a run writes `out`, so a second run on the same output refuses.

    The lock records the owner's pid, host and a random token, and is never without them: they are
    written to a temporary file which is then hard-linked to the lock's name, and the link fails if a
    lock exists (an atomic create-with-content). A lock whose process is gone (a killed run on this
    host) is stale and taken over by renaming a new lock over it, while holding `flock` on the stale
    one and after checking again that the name still holds it, so two runs never both take it over.
    A lock from another host is respected, and the message says how to clear it by hand; an empty or
    unreadable one (a lock being written, or an older bmtpt's) is stale only once older than
    `STALE_EMPTY_SECONDS`. On exit the lock is removed only if the name still holds this run's lock.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = Path(f"{out}.lock")
        self._mine: tuple[int, int] | None = None  # (device, inode) of the lock this run holds
        self._content = b""

    def __enter__(self) -> OutputLock:
        import json
        import socket
        import secrets

        if self.out.is_dir():
            raise BmtptError(f"'{self.out}' is a directory: give --out a file path")
        directory = check_output_directory(self.out)
        if os.path.lexists(self.path) and not self.path.is_file():
            kind = "a directory" if self.path.is_dir() else "not a regular file"
            raise BmtptError(f"the lock '{self.path}' is {kind}: remove it (bmtpt makes it a file) or choose another --out")
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "token": secrets.token_hex(8)}
        self._content = json.dumps(owner).encode()
        tmp = self._write_temporary(directory)
        try:
            for _ in range(10):
                try:
                    os.link(tmp, self.path)  # fails if a lock exists; the new one is complete the moment it appears
                except FileExistsError:
                    if self._take_over_if_stale(tmp):
                        break
                    continue  # it changed hands meanwhile: look again
                except OSError as exc:
                    if exc.errno not in _NO_HARD_LINKS:
                        raise _cannot_write(directory, exc) from None
                    if not self._create_without_links(directory):  # a file system without hard links
                        continue
                break
            else:
                raise BmtptError(f"could not take the lock '{self.path}': delete it if no bmtpt run is writing '{self.out}'")
        finally:
            tmp.unlink(missing_ok=True)
        fsync_directory(directory)
        remove_dead_temporaries(self.out)  # ours now: no live run writes these names
        return self

    def __exit__(self, *exc) -> None:
        mine, self._mine = self._mine, None
        try:
            now = os.stat(self.path)
            if mine == (now.st_dev, now.st_ino) and self.path.read_bytes() == self._content:
                self.path.unlink()  # ours still: a lock another run has since taken is left to it
        except OSError:
            pass

    def _write_temporary(self, directory: Path) -> Path:
        """The lock's content in a temporary file beside it (nothing is left when that fails, e.g. a full disk)."""
        try:
            fd, name = tempfile.mkstemp(prefix=temporary_prefix(self.path), suffix=".tmp", dir=directory)
        except OSError as exc:
            raise _cannot_write(directory, exc) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._content)
                handle.flush()
                os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), 0o644)
                stat = os.fstat(handle.fileno())
        except OSError as exc:
            Path(name).unlink(missing_ok=True)
            raise _cannot_write(directory, exc) from None
        self._mine = (stat.st_dev, stat.st_ino)
        return Path(name)

    def _create_without_links(self, directory: Path) -> bool:
        """Where hard links are not supported: create the lock exclusively, then write it (a reader
        sees it empty for a moment, which `STALE_EMPTY_SECONDS` allows for). False: it exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if self._take_over_if_stale(None):
                return True
            return False
        except OSError as exc:
            raise _cannot_write(directory, exc) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._content)
                stat = os.fstat(handle.fileno())
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            raise _cannot_write(directory, exc) from None
        self._mine = (stat.st_dev, stat.st_ino)
        return True

    def _take_over_if_stale(self, tmp: Path | None) -> bool:
        """Replace the lock at `self.path` by ours (`tmp`) if it is stale; False if it changed meanwhile.
        Raises the one-line refusal while it is held."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR)  # read-write: flock over NFS needs it
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BmtptError(f"cannot read the lock '{self.path}' ({exc.strerror or exc}): delete it if no bmtpt run is writing '{self.out}'") from None
        try:
            deadline = time.monotonic() + 5
            while True:  # every run taking over this stale lock queues here, for the moment the take-over lasts
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.01)
            held = os.fstat(fd)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                return False
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                return False  # already taken over (or released and made again)
            owner = _parse_owner(os.pread(fd, 4096, 0))
            if not _stale(owner, time.time() - held.st_mtime):
                raise self._held(owner)
            if tmp is None:  # no hard links: rewrite the stale lock in place, which we hold
                os.ftruncate(fd, 0)
                os.pwrite(fd, self._content, 0)
                os.utime(fd)
                self._mine = (held.st_dev, held.st_ino)
            else:
                os.replace(tmp, self.path)  # atomic: the name goes from the stale lock to ours
            return True
        finally:
            os.close(fd)

    def _held(self, owner: dict | None) -> BmtptError:
        if owner is None:
            return BmtptError(
                f"the lock '{self.path}' is empty: another bmtpt run is starting on '{self.out}' — wait a few seconds "
                f"and retry, or delete the lock if no bmtpt run is writing '{self.out}'"
            )
        return BmtptError(
            f"another bmtpt run (pid {owner.get('pid')} on {owner.get('host')}) is writing '{self.out}': "
            f"wait for it, choose another --out, or delete '{self.path}' if that run is gone"
        )


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def _parse_owner(data: bytes) -> dict | None:
    import json

    try:
        owner = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None  # empty, half-written or not a lock bmtpt wrote
    return owner if isinstance(owner, dict) else None


def _stale(owner: dict | None, age: float) -> bool:
    """A lock whose run is gone: a dead process on this host, or empty / unreadable and old."""
    import socket

    if owner is None:
        return age > STALE_EMPTY_SECONDS
    return owner.get("host") == socket.gethostname() and not _pid_alive(owner.get("pid"))


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
    if out.is_dir() and any(out.iterdir()) and not (out / OUTPUT_MARKER).is_file():
        raise BmtptError(
            f"'{out}' holds files bmtpt did not write (no {OUTPUT_MARKER} file in it): --force replaces only a directory "
            f"bmtpt wrote; empty it yourself or choose another {flag}"
        )
    check_output_directory(out, flag)


OUTPUT_MARKER = ".bmtpt-output"
"""The file in every directory `staged_directory` writes: `--force` replaces a non-empty directory only with it."""


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
        (staging / OUTPUT_MARKER).write_text("written by bmtpt: `--force` may replace this directory as a whole\n", encoding="utf-8")
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 directories; give the output the usual permissions
        fsync_directory(staging)
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
        fsync_directory(parent)  # the rename itself survives a power cut
    finally:
        shutil.rmtree(staging, ignore_errors=True)
