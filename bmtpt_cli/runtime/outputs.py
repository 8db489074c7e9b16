"""A run's output file and the files beside it, and the checks made before anything is written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bmtpt_cli.errors import BmtptError
from bmtpt_cli.runtime.files import check_writable, side_file


def sidecar(out: Path, suffix: str) -> Path:
    """A file beside an output, named by appending to its whole name: particles.safetensors → particles.safetensors.ckpt."""
    return side_file(out, suffix)


def check_not_an_input(out: Path, inputs: dict[str, Path | list[Path]], *, replaces_directory: bool = False, flag: str = "--out") -> None:
    """Refuse an output that is one of the run's inputs (`inputs`: flag → path or paths), compared as resolved
    paths and, where both exist, as the same file; with `replaces_directory`, also an input inside it."""
    out = Path(out)
    target = out.resolve()
    pairs = [(given, path) for given, paths in inputs.items() for path in (paths if isinstance(paths, list) else [paths])]
    for given, path in pairs:
        source = Path(path).resolve()
        same = source == target
        if not same and os.path.exists(out) and os.path.exists(path):
            same = os.path.samefile(out, path)
        if same:
            raise BmtptError(f"{flag} '{out}' is this run's input {given} '{path}', which writing it would destroy: choose another {flag}")
        if replaces_directory and target in source.parents:
            raise BmtptError(f"{given} '{path}' is inside {flag} '{out}', which the run replaces as a whole: choose another {flag}")


def _left_beside(checkpoint: Path, out: Path) -> bool:
    """A finished output with a checkpoint older than it beside it: the run's last checkpoint, which a
    kill between the artifact's rename and the checkpoint's removal leaves (the artifact is written
    only after the last checkpoint, so an unfinished later run's checkpoint would be newer)."""
    try:
        return out.is_file() and checkpoint.is_file() and checkpoint.stat().st_mtime_ns <= out.stat().st_mtime_ns
    except OSError:
        return False


@dataclass(frozen=True)
class RunOutput:
    """The output a run writes (`out`), whether it may overwrite it, and whether it resumes."""

    out: Path
    force: bool
    resume: bool

    @property
    def checkpoint(self) -> Path:
        return sidecar(self.out, ".ckpt")

    @property
    def log(self) -> Path:
        return sidecar(self.out, ".log.jsonl")

    @property
    def cells(self) -> Path:
        return sidecar(self.out, ".cells.jsonl")

    @property
    def lock(self) -> Path:
        return sidecar(self.out, ".lock")

    def check(self, *, checkpointed: bool = True) -> None:
        """Refuse to clobber an existing output or an unfinished run's checkpoint, unless asked to."""
        extending = checkpointed and self.resume and self.checkpoint.is_file()  # a kept final checkpoint (--keep-checkpoint)
        if checkpointed and self.resume and not extending and self.out.is_file():
            raise BmtptError(
                f"'{self.out}' is a finished run and its checkpoint '{self.checkpoint}' was removed, so --resume cannot "
                "continue it: drop --resume (with --force to train it again); to extend a run later, train it with --keep-checkpoint"
            )
        if checkpointed and not (self.resume or self.force) and _left_beside(self.checkpoint, self.out):
            raise BmtptError(
                f"'{self.out}' already exists, finished, and its last checkpoint '{self.checkpoint}' is still beside it "
                "(a run stopped before removing it, or --keep-checkpoint): pass --resume to finish it (the artifact is "
                "written again from that checkpoint, which is then removed), --force to train again, or choose another --out"
            )
        check_writable(self.out, force=self.force or extending)
        if not checkpointed:
            return
        if self.resume and not self.checkpoint.is_file():
            legacy = self.out.with_suffix(".ckpt")  # where bmtpt before issue 27 kept it
            if legacy != self.checkpoint and legacy.is_file():
                raise BmtptError(
                    f"--resume given but no checkpoint at '{self.checkpoint}'; '{legacy}' may be one an older bmtpt wrote "
                    f"for this output: rename it to '{self.checkpoint}' to resume, or run without --resume to start fresh"
                )
            raise BmtptError(f"--resume given but no checkpoint at '{self.checkpoint}': run without --resume to start fresh")
        if not self.resume and self.checkpoint.exists() and not self.force:
            raise BmtptError(
                f"an unfinished run's checkpoint exists at '{self.checkpoint}': pass --resume to continue it or --force to start over"
            )
