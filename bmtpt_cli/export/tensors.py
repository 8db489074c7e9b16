"""A task's composed prompt as a plain tensor file: `<task>.safetensors` with `prompt_embeddings` (l, d).

θ_k = W ⊙ (a_k b_kᵀ) (SPEC §3), float32, loadable with `safetensors.torch.load_file` and nothing
else; prepend it to the encoder's input embeddings (attention mask extended by l ones, SPEC §1).
The metadata names the task, the model and the prompts file it came from; its `bmtpt.kind`
(`composed-prompt`) keeps bmtpt's own loaders from mistaking it for a trainable artifact.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bmtpt_cli.export.peft import save_tensors

COMPOSED_PROMPT = "composed-prompt"
TENSOR_NAME = "prompt_embeddings"


def composed_prompt_path(directory: Path, task: str) -> Path:
    """Where a task's composed prompt goes in a `--format safetensors` export."""
    return Path(directory) / f"{task}.safetensors"


def write_composed_prompt(path: Path, task: str, prompt: torch.Tensor, metadata: dict[str, str]) -> None:
    """Write θ_k `(l, d)` as tensor `prompt_embeddings`, with the export's metadata and the task's name."""
    save_tensors(path, {TENSOR_NAME: prompt}, {**metadata, "bmtpt.kind": COMPOSED_PROMPT, "bmtpt.task": task})
