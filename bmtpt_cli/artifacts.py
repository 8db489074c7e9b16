"""bmtpt's artifacts: safetensors files of particles and target prompts, their metadata, validation.

Every file bmtpt writes goes through `atomic_write`: a temporary file in the same directory renamed
into place, so an interrupted write leaves the old file or the new one, never a torn one.

Formats (metadata values are strings, as safetensors requires):
- particles: tensor `particles` (M, l, d); `bmtpt.kind=particles`, `bmtpt.num_particles`, `bmtpt.tasks`.
- prompts: tensors `shared` (l, d), `tasks.<name>.a` (l,), `tasks.<name>.b` (d,); `bmtpt.kind=prompts`,
  `bmtpt.init`, `bmtpt.init_sha256`, `bmtpt.dev_metrics` (JSON).
- both: `bmtpt.format`, `bmtpt.model`, `bmtpt.d_model`, `bmtpt.prompt_length`, `bmtpt.config` (JSON of
  the resolved settings), `bmtpt.version`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli import __version__
from bmtpt_cli.errors import BmtptError

FORMAT_VERSION = "1"
PARTICLES = "particles"
PROMPTS = "prompts"


# --------------------------------------------------------------------------------- file writing
def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise BmtptError(f"output directory '{directory}' does not exist: create it or choose another --out")
    if not os.access(directory, os.W_OK):
        raise BmtptError(f"output directory '{directory}' is not writable: choose another --out")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
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


def check_writable(path: Path, *, force: bool, flag: str = "--out") -> None:
    """Refuse to overwrite an existing output unless `force`; refuse a missing or read-only directory."""
    path = Path(path)
    if path.is_dir():
        raise BmtptError(f"'{path}' is a directory: give {flag} a file path")
    if path.exists() and not force:
        raise BmtptError(f"'{path}' already exists: pass --force to overwrite it or choose another {flag}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise BmtptError(f"output directory '{directory}' does not exist: create it or choose another {flag}")
    if not os.access(directory, os.W_OK):
        raise BmtptError(f"output directory '{directory}' is not writable: choose another {flag}")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (recorded so a target prompt names the exact init it came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------- metadata
def common_metadata(*, kind: str, model: str, d_model: int, prompt_length: int, config: dict) -> dict[str, str]:
    """The metadata every artifact carries (all values strings)."""
    return {
        "bmtpt.kind": kind,
        "bmtpt.format": FORMAT_VERSION,
        "bmtpt.model": model,
        "bmtpt.d_model": str(d_model),
        "bmtpt.prompt_length": str(prompt_length),
        "bmtpt.config": json.dumps(config, sort_keys=True, default=str),
        "bmtpt.version": __version__,
    }


def _save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise BmtptError(f"refusing to write '{path}': tensor '{name}' has NaN or Inf values")
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _read(path: Path, kind: str, flag: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise BmtptError(f"{kind} file '{path}' not found: pass an existing file with {flag}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BmtptError(f"'{path}' is not a readable safetensors file ({exc}): pass a file written by bmtpt") from exc
    found = metadata.get("bmtpt.kind")
    if found != kind:
        what = f"a bmtpt '{found}' file" if found else "not a bmtpt artifact"
        raise BmtptError(f"'{path}' is {what}, expected {kind}: pass a {kind} file with {flag}")
    if metadata.get("bmtpt.format") != FORMAT_VERSION:
        raise BmtptError(
            f"'{path}' has artifact format {metadata.get('bmtpt.format')!r}, this bmtpt reads format "
            f"{FORMAT_VERSION}: re-create it with this version"
        )
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise BmtptError(f"'{path}' holds NaN or Inf values in '{name}': re-create it from a healthy run")
    return tensors, metadata


def check_model_fit(path: Path, metadata: dict[str, str], *, d_model: int, prompt_length: int | None) -> None:
    """Refuse an artifact made for another embedding width or prompt length than the current run's."""
    try:
        width, length = int(metadata.get("bmtpt.d_model", -1)), int(metadata.get("bmtpt.prompt_length", -1))
    except ValueError:
        raise BmtptError(f"'{path}' has malformed d_model/prompt_length metadata: re-create it with bmtpt") from None
    if width != d_model:
        raise BmtptError(
            f"'{path}' was made for a model with d_model={width} ({metadata.get('bmtpt.model')}), the current "
            f"model has d_model={d_model}: pass --model {metadata.get('bmtpt.model')} or an artifact for this model"
        )
    if prompt_length is not None and length != prompt_length:
        raise BmtptError(
            f"'{path}' holds prompts of length {length}, the run asks for --prompt-length {prompt_length}: "
            f"drop --prompt-length or pass {length}"
        )


# --------------------------------------------------------------------------------- particles
def save_particles(path: Path, particles: torch.Tensor, *, tasks: list[str], metadata: dict[str, str]) -> None:
    """Write Θ `(M, l, d)` as tensor `particles` with the particles metadata."""
    metadata = {**metadata, "bmtpt.num_particles": str(particles.shape[0]), "bmtpt.tasks": ",".join(tasks)}
    _save(path, {"particles": particles}, metadata)


def load_particles(path: Path, *, flag: str = "--init") -> tuple[torch.Tensor, dict[str, str]]:
    """Read and validate a particles file; returns Θ `(M, l, d)` and its metadata."""
    tensors, metadata = _read(path, PARTICLES, flag)
    particles = tensors.get("particles")
    if particles is None or particles.dim() != 3:
        raise BmtptError(f"'{path}' has no (M, l, d) tensor 'particles': pass a particles file written by bmtpt source")
    return particles, metadata


# --------------------------------------------------------------------------------- target prompts
@dataclass
class PromptArtifact:
    """Target prompts θ_k = W ⊙ (a_k b_kᵀ): the shared W and each task's (a_k, b_k)."""

    shared: torch.Tensor  # (l, d)
    scales: dict[str, tuple[torch.Tensor, torch.Tensor]]  # task -> (a (l,), b (d,))
    metadata: dict[str, str]

    def prompt(self, task: str) -> torch.Tensor:
        """The composed prompt of one task `(l, d)`."""
        a, b = self.scales[task]
        return self.shared * torch.outer(a, b)

    @property
    def tasks(self) -> list[str]:
        return list(self.scales)


def save_prompts(
    path: Path, shared: torch.Tensor, scales: dict[str, tuple[torch.Tensor, torch.Tensor]], *, metadata: dict[str, str]
) -> None:
    """Write W as `shared` and each task's a, b as `tasks.<name>.a`, `tasks.<name>.b`."""
    tensors = {"shared": shared}
    for task, (a, b) in scales.items():
        tensors[f"tasks.{task}.a"] = a
        tensors[f"tasks.{task}.b"] = b
    _save(path, tensors, {**metadata, "bmtpt.tasks": ",".join(scales)})


def load_prompts(path: Path, *, flag: str = "--prompts") -> PromptArtifact:
    """Read and validate a prompts file written by `bmtpt adapt`."""
    tensors, metadata = _read(path, PROMPTS, flag)
    shared = tensors.get("shared")
    if shared is None or shared.dim() != 2:
        raise BmtptError(f"'{path}' has no (l, d) tensor 'shared': pass a prompts file written by bmtpt adapt")
    scales = {}
    for task in [t for t in metadata.get("bmtpt.tasks", "").split(",") if t]:
        a, b = tensors.get(f"tasks.{task}.a"), tensors.get(f"tasks.{task}.b")
        if a is None or b is None or a.shape != shared.shape[:1] or b.shape != shared.shape[1:]:
            raise BmtptError(f"'{path}' lacks well-shaped tensors tasks.{task}.a/b: re-create it with bmtpt adapt")
        scales[task] = (a, b)
    if not scales:
        raise BmtptError(f"'{path}' holds no task prompts: re-create it with bmtpt adapt --tasks ...")
    return PromptArtifact(shared, scales, metadata)


def read_kind(path: Path) -> str | None:
    """The `bmtpt.kind` of a safetensors file, or None when it is not a bmtpt artifact (or unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("bmtpt.kind")
    except Exception:  # noqa: BLE001 — any unreadable file simply has no kind; the loader reports why
        return None


# --------------------------------------------------------------------------------- one run per output
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

        directory = self.out.parent if str(self.out.parent) else Path(".")
        if self.out.is_dir():
            raise BmtptError(f"'{self.out}' is a directory: give --out a file path")
        if not directory.is_dir():
            raise BmtptError(f"output directory '{directory}' does not exist: create it or choose another --out")
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
