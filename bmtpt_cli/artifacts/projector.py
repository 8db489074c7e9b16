"""A cross-model prompt projector as a file (`bmtpt project`, SPEC §5f): its weights and what it maps.

Format: the projector's tensors under their module names (`first.weight` (h, l·d_src), `first.bias`
(h,), `second.weight` (l·d_tgt, h), `second.bias` (l·d_tgt,), `norm.weight` (d_tgt,), `norm.bias`
(d_tgt,)), float32; metadata `bmtpt.kind=projector`, `bmtpt.format`, `bmtpt.version`,
`bmtpt.source_model`, `bmtpt.target_model`, `bmtpt.d_source`, `bmtpt.d_target`, `bmtpt.prompt_length`,
`bmtpt.hidden`, `bmtpt.activation`, `bmtpt.objective`, `bmtpt.tasks` (the training tasks), `bmtpt.steps`,
`bmtpt.config`, and the checksum every bmtpt artifact carries. Written and read by `native._save` and
`native._read`, the one writer and reader of every artifact (atomic write, checksum).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli import __version__
from bmtpt_cli.artifacts.native import FORMAT_VERSION, _read, _save
from bmtpt_cli.errors import BmtptError, excerpt

PROJECTOR = "projector"
ACTIVATIONS = ("tanh", "leaky-relu")
"""The activations between the projector's two linear layers."""
OBJECTIVES = ("task", "distance")
"""How a projector was trained: the target model's task loss, or the distance to the target model's prompts."""


@dataclass(frozen=True)
class ProjectorSpec:
    """What a projector maps: prompts of `prompt_length` × `d_source` of `source_model` to
    `prompt_length` × `d_target` of `target_model`, through `hidden` units and `activation`."""

    source_model: str
    target_model: str
    prompt_length: int
    d_source: int
    d_target: int
    hidden: int
    activation: str

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each of the projector's tensors, by name."""
        flat_in, flat_out = self.prompt_length * self.d_source, self.prompt_length * self.d_target
        return {
            "first.weight": (self.hidden, flat_in), "first.bias": (self.hidden,),
            "second.weight": (flat_out, self.hidden), "second.bias": (flat_out,),
            "norm.weight": (self.d_target,), "norm.bias": (self.d_target,),
        }

    def metadata(self) -> dict[str, str]:
        """The spec as metadata strings."""
        return {
            "bmtpt.source_model": self.source_model, "bmtpt.target_model": self.target_model,
            "bmtpt.prompt_length": str(self.prompt_length), "bmtpt.d_source": str(self.d_source),
            "bmtpt.d_target": str(self.d_target), "bmtpt.hidden": str(self.hidden), "bmtpt.activation": self.activation,
        }


@dataclass
class ProjectorFile:
    """A projector read from disk: its spec, tensors and metadata."""

    spec: ProjectorSpec
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    path: Path

    @property
    def objective(self) -> str:
        return self.metadata.get("bmtpt.objective", "")

    @property
    def tasks(self) -> list[str]:
        """The tasks the projector was trained on."""
        return [task for task in self.metadata.get("bmtpt.tasks", "").split(",") if task]


def save_projector(path: Path, tensors: dict[str, torch.Tensor], spec: ProjectorSpec, *, metadata: dict[str, str]) -> None:
    """Write a projector's tensors with its spec and `metadata` (objective, tasks, steps, config, …)."""
    shapes = spec.tensor_shapes()
    if set(tensors) != set(shapes) or any(tuple(tensors[name].shape) != shape for name, shape in shapes.items()):
        raise ValueError(f"projector tensors {sorted(tensors)} do not fit {spec}")  # a bug, not a user error
    header = {"bmtpt.kind": PROJECTOR, "bmtpt.format": FORMAT_VERSION, "bmtpt.version": __version__}
    _save(path, tensors, {**metadata, **header, **spec.metadata()})


def load_projector(path: Path, *, flag: str = "--projector") -> ProjectorFile:
    """Read and validate a projector file: its spec from the metadata, every tensor of its shape."""
    tensors, metadata = _read(path, PROJECTOR, flag)
    try:
        numbers = {key: int(metadata[f"bmtpt.{key}"]) for key in ("prompt_length", "d_source", "d_target", "hidden")}
        spec = ProjectorSpec(metadata["bmtpt.source_model"], metadata["bmtpt.target_model"], activation=metadata["bmtpt.activation"],
                             **numbers)
    except (KeyError, ValueError):
        raise BmtptError(f"'{path}' lacks well-formed projector metadata (models, widths, length, hidden, activation): "
                         "re-create it with bmtpt project") from None
    if spec.activation not in ACTIVATIONS or min(numbers.values()) < 1:
        raise BmtptError(f"'{path}' records an unusable projector ({excerpt(spec.activation)}, {numbers}): re-create it with bmtpt project")
    shapes = spec.tensor_shapes()
    wrong = [name for name, shape in shapes.items() if name not in tensors or tuple(tensors[name].shape) != shape]
    if wrong or set(tensors) != set(shapes):
        named = wrong or sorted(set(tensors) - set(shapes))
        raise BmtptError(f"'{path}' has projector tensors that do not fit its metadata ({excerpt(named)}): re-create it with bmtpt project")
    return ProjectorFile(spec, tensors, metadata, Path(path))
