"""The cross-model prompt projector (Su et al., NAACL 2022, §6; SPEC §5f).

A source-model prompt (l, d_src) is flattened, mapped by Linear(l·d_src → h), an activation (tanh, or
LeakyReLU), Linear(h → l·d_tgt), reshaped to (l, d_tgt) and layer-normalised over d_tgt. One projector
maps every prompt of an artifact. Its weights are ordinary parameters that the loss reaches through
autograd (the reference assigned the projected prompt through `.weight.data`, so its T5 projector
never received a gradient: its issue #2).
"""

from __future__ import annotations

import torch
from torch import nn

from bmtpt_cli.artifacts.projector import ProjectorFile, ProjectorSpec


def activation_module(name: str) -> nn.Module:
    """The activation between the two linear layers: `tanh` (the paper's) or `leaky-relu`."""
    if name == "tanh":
        return nn.Tanh()
    if name == "leaky-relu":
        return nn.LeakyReLU()
    raise ValueError(f"unknown projector activation {name!r}")


class PromptProjector(nn.Module):
    """Maps prompts `(N, l, d_src)` of the source model to prompts `(N, l, d_tgt)` of the target model."""

    def __init__(self, spec: ProjectorSpec):
        super().__init__()
        self.spec = spec
        self.first = nn.Linear(spec.prompt_length * spec.d_source, spec.hidden)
        self.activation = activation_module(spec.activation)
        self.second = nn.Linear(spec.hidden, spec.prompt_length * spec.d_target)
        self.norm = nn.LayerNorm(spec.d_target)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        """`(N, l, d_src)` → `(N, l, d_tgt)`."""
        flat = prompts.reshape(prompts.shape[0], -1)  # (N, l·d_src)
        hidden = self.activation(self.first(flat))  # (N, h)
        out = self.second(hidden).view(prompts.shape[0], self.spec.prompt_length, self.spec.d_target)
        return self.norm(out)  # (N, l, d_tgt)

    @torch.no_grad()
    def project(self, prompts: torch.Tensor) -> torch.Tensor:
        """The projection of `(N, l, d_src)` prompts, detached, as float32 on the CPU."""
        device = self.first.weight.device
        return self(prompts.to(device=device, dtype=torch.float32)).float().cpu()

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights to save, by name (`artifacts.projector.save_projector`)."""
        return {name: tensor.detach().cpu() for name, tensor in self.state_dict().items()}


def new_projector(spec: ProjectorSpec, seed: int) -> PromptProjector:
    """A freshly initialised projector (PyTorch's default initialisation), the same for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PromptProjector(spec)


def projector_from_file(saved: ProjectorFile) -> PromptProjector:
    """The projector a file holds, in evaluation form (no gradients)."""
    projector = PromptProjector(saved.spec)
    projector.load_state_dict(saved.tensors)
    return projector.requires_grad_(False).eval()
