"""PEFT prompt-tuning adapters for a T5 (SPEC §8): `adapter_config.json` + `adapter_model.safetensors`.

The layout is PEFT's own (checked against PEFT 0.21.2, loadable from 0.10 on): one float32 tensor
`prompt_embeddings` `(l, d)` for PROMPT_TUNING; for MULTITASK_PROMPT_TUNING with rank 1 also
`prefix_task_cols` `(K, l, 1)` and `prefix_task_rows` `(K, 1, d)`, so PEFT's prompt of task k,
`prompt_embeddings * (cols[k] @ rows[k])`, is bmtpt's θ_k = W ⊙ (a_k b_kᵀ). The config holds only
keys PEFT 0.10 already knows (older versions refuse unknown ones) and sets
`num_transformer_submodules` to 1 explicitly (left null, PEFT expects 2·l rows for seq2seq).
PEFT itself is not needed to write them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from bmtpt_cli.artifacts.native import canonical_header
from bmtpt_cli.runtime.files import atomic_write, write_text_atomic

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


@dataclass(frozen=True)
class BaseModelShape:
    """What a PEFT prompt config records about the frozen model (read from its config, no weights)."""

    name: str  # base_model_name_or_path
    d_model: int
    num_layers: int
    num_attention_heads: int


def prompt_tuning_config(model: BaseModelShape, prompt_length: int) -> dict:
    """`adapter_config.json` of a single-task PEFT PROMPT_TUNING adapter for a seq2seq model."""
    return {
        "peft_type": "PROMPT_TUNING",
        "task_type": "SEQ_2_SEQ_LM",
        "base_model_name_or_path": model.name,
        "revision": None,
        "inference_mode": True,
        "auto_mapping": None,
        "num_virtual_tokens": prompt_length,
        "token_dim": model.d_model,
        "num_transformer_submodules": 1,  # encoder only; null would make PEFT expect 2·l rows
        "num_attention_heads": model.num_attention_heads,
        "num_layers": model.num_layers,
        "prompt_tuning_init": "RANDOM",  # how PEFT would initialise it; the weights file overrides it
        "prompt_tuning_init_text": None,
        "tokenizer_name_or_path": None,
    }


def multitask_config(model: BaseModelShape, prompt_length: int, num_tasks: int) -> dict:
    """`adapter_config.json` of a rank-1 PEFT MULTITASK_PROMPT_TUNING adapter over `num_tasks` tasks."""
    return {
        **prompt_tuning_config(model, prompt_length),
        "peft_type": "MULTITASK_PROMPT_TUNING",
        "num_tasks": num_tasks,
        "num_ranks": 1,
    }


def prompt_tuning_tensors(prompt: torch.Tensor) -> dict[str, torch.Tensor]:
    """The single-task adapter's weights: θ_k `(l, d)` as `prompt_embeddings`."""
    return {"prompt_embeddings": prompt}


def multitask_tensors(shared: torch.Tensor, scales: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The rank-1 multitask adapter's weights: W `(l, d)`, the a_k as `(K, l, 1)`, the b_k as `(K, 1, d)`.

    `scales` is in task-id order: entry k is the (a_k, b_k) that `task_ids = k` selects.
    """
    return {
        "prompt_embeddings": shared,  # (l, d)
        "prefix_task_cols": torch.stack([a for a, _ in scales]).unsqueeze(-1),  # (K, l, 1)
        "prefix_task_rows": torch.stack([b for _, b in scales]).unsqueeze(1),  # (K, 1, d)
    }


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write float32 tensors as a safetensors file (sorted header, so equal content gives equal bytes)."""
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in tensors.items()}
    data = canonical_header(save(tensors, metadata=metadata))
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_adapter(directory: Path, config: dict, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write one PEFT adapter (config and weights) into an existing `directory`."""
    write_text_atomic(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    save_tensors(directory / WEIGHTS_FILE, tensors, {"format": "pt", **metadata})
