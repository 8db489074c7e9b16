"""bmtpt's artifacts: safetensors files of particles and target prompts, their metadata, validation.

Files are written through `runtime.files.atomic_write` (a temporary file renamed into place), so an
interrupted write leaves the old file or the new one, never a torn one.

Formats (metadata values are strings, as safetensors requires):
- particles: tensor `particles` (M, l, d); `bmtpt.kind=particles`, `bmtpt.num_particles`, `bmtpt.tasks`.
- prompts: tensors `shared` (l, d), `tasks.<name>.a` (l,), `tasks.<name>.b` (d,), and a method's own
  tensors as `extra.<name>`; `bmtpt.kind=prompts`, `bmtpt.method`, `bmtpt.init`, `bmtpt.init_sha256`,
  `bmtpt.dev_metrics` (JSON); `bmtpt.input_dependent=true` when the prompts depend on each input
  (ATTEMPT), so they are never read as one fixed prompt per task; `bmtpt.members=M` for an ensemble
  (bmtpt-ensemble), whose member m's W and (a_k, b_k) are `extra.member.<m>.shared`,
  `extra.member.<m>.<task>.a`, `extra.member.<m>.<task>.b` (`shared`, `tasks.*` hold member 0's),
  and whose one prompt per task is the members' mean.
- both: `bmtpt.format`, `bmtpt.model`, `bmtpt.d_model`, `bmtpt.prompt_length`, `bmtpt.config` (JSON of
  the resolved settings), `bmtpt.version`, and `bmtpt.sha256` (`content_sha256`: the tensors and the
  other metadata), verified by every load; a file without it (an older bmtpt) loads with the check skipped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bmtpt_cli import __version__
from bmtpt_cli.errors import BmtptError, excerpt
from bmtpt_cli.runtime.files import atomic_write

FORMAT_VERSION = "1"
PARTICLES = "particles"
PROMPTS = "prompts"


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


MAX_METADATA_JSON = 1 << 20
"""The longest JSON metadata value read (characters): bmtpt's own are a few kilobytes."""
MAX_METADATA_DEPTH = 32
"""The deepest nesting of JSON metadata read: bmtpt's own nest at most 3 levels."""
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(text: str, limit: int) -> int:
    """How deeply `text`'s brackets nest outside its strings, counted up to `limit` + 1 (no parsing)."""
    depth = deepest = 0
    for bracket in re.findall(r"[\[\]{}]", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
    return deepest


def metadata_json(metadata: dict[str, str], key: str, path: Path | str) -> dict:
    """The JSON object a metadata value holds ({} when the key is absent), read within bounds.

    A crafted file cannot exhaust the parser: a value over `MAX_METADATA_JSON` characters, nested
    deeper than `MAX_METADATA_DEPTH`, not JSON, or not an object is a one-line `BmtptError`.
    """
    text = metadata.get(key)
    if text is None:
        return {}
    if len(text) > MAX_METADATA_JSON:
        problem = f"{len(text)} characters, more than {MAX_METADATA_JSON}"
    elif json_depth(text, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
        problem = f"nested deeper than {MAX_METADATA_DEPTH} levels"
    else:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            problem = f"not valid JSON: {getattr(exc, 'msg', type(exc).__name__)}"
        else:
            if isinstance(value, dict):
                return value
            problem = f"a JSON {type(value).__name__}, not an object"
    raise BmtptError(f"'{path}' has malformed metadata {key} ({problem}): re-create the file with bmtpt")


def _save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save

    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise BmtptError(f"refusing to write '{path}': tensor '{name}' has NaN or Inf values")
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in tensors.items()}
    metadata = {**metadata, CHECKSUM: content_sha256(tensors, metadata)}
    data = canonical_header(save(tensors, metadata=metadata))
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


CHECKSUM = "bmtpt.sha256"
"""The metadata key of an artifact's checksum (`content_sha256`), verified by every load."""


def content_sha256(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Hex SHA-256 of an artifact's content: every tensor's name, dtype, shape and bytes, and every
    metadata entry but the checksum itself, in sorted order (independent of the header's layout)."""
    digest = hashlib.sha256()
    for key in sorted(metadata):
        if key != CHECKSUM:
            digest.update(json.dumps(["metadata", key, metadata[key]]).encode("utf-8") + b"\n")
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps(["tensor", name, str(tensor.dtype), list(tensor.shape)]).encode("utf-8") + b"\n")
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_checksum(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Refuse an artifact whose content no longer matches the checksum it was written with.

    A file without `bmtpt.sha256` (written by a bmtpt from before checksums) still loads: the check
    is skipped for it, as for a safetensors file made by other tools.
    """
    recorded = metadata.get(CHECKSUM)
    if recorded is not None and recorded != content_sha256(tensors, metadata):
        raise BmtptError(
            f"'{path}' is damaged: its content does not match the checksum it was written with (a changed bit on "
            "disk or in a copy): regenerate it with the bmtpt command that made it, or restore a good copy"
        )


def canonical_header(data: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted, so equal content gives equal bytes.

    safetensors writes the metadata in hash-map order, which changes from process to process; the
    tensor bytes and their offsets (relative to the end of the header) are untouched, and the
    header is padded with spaces to a multiple of 8 bytes as safetensors does.
    """
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(dict(sorted(header.items())), separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length :]


def _read(path: Path, kind: str, flag: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.is_dir():
        raise BmtptError(f"'{path}' is a directory, not a {kind} file: pass the {kind} file itself with {flag}")
    if not path.is_file():
        raise BmtptError(f"{kind} file '{path}' not found: pass an existing file with {flag}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BmtptError(f"'{path}' is not a readable safetensors file ({exc}): pass a file written by bmtpt") from exc
    check_checksum(path, tensors, metadata)
    found = metadata.get("bmtpt.kind")
    if found != kind:
        what = f"a bmtpt {excerpt(found)} file" if found else "not a bmtpt artifact"
        raise BmtptError(f"'{path}' is {what}, expected {kind}: pass a {kind} file with {flag}")
    if metadata.get("bmtpt.format") != FORMAT_VERSION:
        raise BmtptError(
            f"'{path}' has artifact format {excerpt(metadata.get('bmtpt.format'))}, this bmtpt reads format "
            f"{FORMAT_VERSION}: re-create it with this version"
        )
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():  # integers or booleans would pass the finiteness check below
            raise BmtptError(
                f"'{path}' holds {str(tensor.dtype).replace('torch.', '')} values in {excerpt(name)}, bmtpt artifacts hold "
                "float32: re-create it with bmtpt"
            )
        if not torch.isfinite(tensor).all():
            raise BmtptError(f"'{path}' holds NaN or Inf values in '{name}': re-create it from a healthy run")
    tensors = {name: tensor.float() for name, tensor in tensors.items()}
    return tensors, metadata


def _check_shape(path: Path, metadata: dict[str, str], width: int, length: int) -> None:
    """Refuse tensors `(…, length, width)` that disagree with the metadata's prompt_length and d_model
    (a hand-made file): a loader would otherwise fail deep inside the model."""
    for key, found in (("bmtpt.d_model", width), ("bmtpt.prompt_length", length)):
        try:
            recorded = int(metadata.get(key, found))
        except ValueError:
            continue  # check_model_fit reports malformed values
        if recorded != found:
            raise BmtptError(
                f"'{path}' holds tensors of {key.split('.')[1]} {found}, its metadata says {key.split('.')[1]} {recorded}: "
                "re-create it with bmtpt"
            )


def check_model_fit(path: Path, metadata: dict[str, str], *, d_model: int, prompt_length: int | None) -> None:
    """Refuse an artifact made for another embedding width or prompt length than the current run's."""
    try:
        width, length = int(metadata.get("bmtpt.d_model", -1)), int(metadata.get("bmtpt.prompt_length", -1))
    except ValueError:
        raise BmtptError(f"'{path}' has malformed d_model/prompt_length metadata: re-create it with bmtpt") from None
    if width != d_model:
        raise BmtptError(
            f"'{path}' was made for a model with d_model={width} ({excerpt(metadata.get('bmtpt.model'))}), the current "
            f"model has d_model={d_model}: pass --model with that model, or an artifact for this model"
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
    _check_shape(path, metadata, particles.shape[2], particles.shape[1])
    return particles, metadata


# --------------------------------------------------------------------------------- target prompts
INPUT_DEPENDENT = "bmtpt.input_dependent"
MEMBERS = "bmtpt.members"


def member_tensor_names(member: int, task: str | None = None) -> tuple[str, ...]:
    """The `extra` names of an ensemble member's W (no task), or of its (a_k, b_k) for `task`."""
    if task is None:
        return (f"member.{member}.shared",)
    return f"member.{member}.{task}.a", f"member.{member}.{task}.b"


@dataclass
class PromptArtifact:
    """Target prompts θ_k = W ⊙ (a_k b_kᵀ): the shared W and each task's (a_k, b_k); a method's own
    tensors (`extra`) beside them."""

    shared: torch.Tensor  # (l, d)
    scales: dict[str, tuple[torch.Tensor, torch.Tensor]]  # task -> (a (l,), b (d,))
    metadata: dict[str, str]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None

    @property
    def input_dependent(self) -> bool:
        """Whether each input gets its own prompt (then there is no one prompt per task)."""
        return self.metadata.get(INPUT_DEPENDENT) == "true"

    def prompt(self, task: str) -> torch.Tensor:
        """The composed prompt of one task `(l, d)`; refused for prompts that depend on the input."""
        if self.input_dependent:
            raise BmtptError(
                f"'{self.path}' holds method {self.metadata.get('bmtpt.method', '?')}'s prompts, which depend on each "
                "input, so it has no one prompt per task: score it with bmtpt evaluate --prompts, or give a file of a "
                "prompt-tuning method"
            )
        if self.members:
            return torch.stack([self.member_prompt(m, task) for m in range(self.members)]).mean(dim=0)
        a, b = self.scales[task]
        return self.shared * torch.outer(a, b)

    @property
    def members(self) -> int:
        """M of an ensemble's file (its members' prompts in `extra`), 0 for one prompt per task."""
        return int(self.metadata.get(MEMBERS, "0") or 0)

    def member_prompt(self, member: int, task: str) -> torch.Tensor:
        """An ensemble member's composed prompt W_m ⊙ a_mk b_mkᵀ `(l, d)` for one task."""
        (shared,), (a, b) = member_tensor_names(member), member_tensor_names(member, task)
        return self.extra[shared] * torch.outer(self.extra[a], self.extra[b])

    @property
    def tasks(self) -> list[str]:
        return list(self.scales)


def save_prompts(
    path: Path, shared: torch.Tensor, scales: dict[str, tuple[torch.Tensor, torch.Tensor]], *, metadata: dict[str, str],
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write W as `shared`, each task's a, b as `tasks.<name>.a`, `tasks.<name>.b`, and a method's own
    tensors as `extra.<name>`."""
    tensors = {"shared": shared}
    for task, (a, b) in scales.items():
        tensors[f"tasks.{task}.a"] = a
        tensors[f"tasks.{task}.b"] = b
    for name, tensor in (extra or {}).items():
        tensors[f"extra.{name}"] = tensor
    _save(path, tensors, {**metadata, "bmtpt.tasks": ",".join(scales)})


def load_prompts(path: Path, *, flag: str = "--prompts") -> PromptArtifact:
    """Read and validate a prompts file written by `bmtpt adapt`."""
    tensors, metadata = _read(path, PROMPTS, flag)
    shared = tensors.get("shared")
    if shared is None or shared.dim() != 2:
        raise BmtptError(f"'{path}' has no (l, d) tensor 'shared': pass a prompts file written by bmtpt adapt")
    _check_shape(path, metadata, shared.shape[1], shared.shape[0])
    scales = {}
    for task in [t for t in metadata.get("bmtpt.tasks", "").split(",") if t]:
        a, b = tensors.get(f"tasks.{task}.a"), tensors.get(f"tasks.{task}.b")
        if a is None or b is None or a.shape != shared.shape[:1] or b.shape != shared.shape[1:]:
            named = f"tasks.{task}.a/b" if task.isprintable() and len(task) <= 100 else f"for task {excerpt(task)}"
            raise BmtptError(f"'{path}' lacks well-shaped tensors {named}: re-create it with bmtpt adapt")
        scales[task] = (a, b)
    if not scales:
        raise BmtptError(f"'{path}' holds no task prompts: re-create it with bmtpt adapt --tasks ...")
    extra = {name.removeprefix("extra."): tensor for name, tensor in tensors.items() if name.startswith("extra.")}
    artifact = PromptArtifact(shared, scales, metadata, extra, Path(path))
    _check_members(artifact)
    return artifact


def _check_members(artifact: PromptArtifact) -> None:
    """Refuse an ensemble's file whose member count or member tensors are missing or misshapen."""
    if MEMBERS not in artifact.metadata:
        return
    count = artifact.metadata[MEMBERS]
    if not (count.isdigit() and int(count) >= 1):
        raise BmtptError(f"'{artifact.path}' records {MEMBERS} = {excerpt(count)}, not a member count: re-create it with bmtpt adapt")
    shapes = {"shared": artifact.shared.shape, "a": artifact.shared.shape[:1], "b": artifact.shared.shape[1:]}
    for m in range(int(count)):
        wanted = {member_tensor_names(m)[0]: shapes["shared"]}
        for task in artifact.tasks:
            a, b = member_tensor_names(m, task)
            wanted |= {a: shapes["a"], b: shapes["b"]}
        bad = [name for name, shape in wanted.items() if name not in artifact.extra or artifact.extra[name].shape != shape]
        if bad:
            raise BmtptError(f"'{artifact.path}' lacks well-shaped ensemble tensors {', '.join(bad[:3])}: re-create it with bmtpt adapt")


def read_kind(path: Path) -> str | None:
    """The `bmtpt.kind` of a safetensors file, or None when it is not a bmtpt artifact (or unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("bmtpt.kind")
    except Exception:  # noqa: BLE001 — any unreadable file simply has no kind; the loader reports why
        return None
