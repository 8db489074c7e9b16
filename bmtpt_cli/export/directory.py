"""An export directory written as a whole or not at all: filled as a hidden sibling, then renamed.

A stopped export leaves the old directory or the new one, never a half-written one. An existing
directory that holds anything is replaced only with `force`; two exports racing for the same new
directory cannot mix their files (the second rename fails and is reported).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.files import check_output_directory


def check_export_directory(out: Path, *, force: bool, flag: str = "--out") -> None:
    """Refuse `out` when it is a file, a non-empty directory without `force`, or its parent is unusable."""
    out = Path(out)
    here = Path.cwd()
    if not out.name or out.resolve() in (here, *here.parents):
        raise BmtptError(f"--out '{out}' is the directory you are in (or above it), which an export would replace: give a new directory")
    if out.exists() and not out.is_dir():
        raise BmtptError(f"'{out}' is a file: give {flag} a directory path (an export is several files)")
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
    check_export_directory(out, force=force, flag=flag)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise BmtptError(f"cannot create a directory in '{parent}' ({exc.strerror or exc}): choose another {flag}") from None
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700 directories; give the export the usual permissions
        old = None
        if out.exists():
            check_export_directory(out, force=force, flag=flag)  # it may have appeared while we wrote
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.replace(out, old / out.name)
        try:
            os.replace(staging, out)
        except OSError as exc:
            if old is not None:
                os.replace(old / out.name, out)  # put the previous export back
            raise BmtptError(f"could not move the export into '{out}' ({exc.strerror or exc}): choose another {flag}") from None
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
