"""The runner a run asks for: which model, where, in which precision, with which speed options."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bmtpt_cli.runner.model import (
    autocast_dtype,
    compile_model,
    enable_gradient_checkpointing,
    load_frozen_t5,
    resolve_device,
)
from bmtpt_cli.runner.runner import FrozenT5Runner
from bmtpt_cli.runtime.progress import SILENT, Progress


@dataclass(frozen=True)
class RunnerConfig:
    """The frozen LM and how it runs; built from a command's settings by name."""

    model: str
    device: str
    precision: str  # auto | fp32 | bf16
    compile: bool
    grad_checkpointing: bool
    max_source_length: int
    max_target_length: int
    chunk_sequences: int | None = None  # sequences per training pass (None: the automatic plan)
    eval_tokens: int | None = None  # padded tokens per evaluation pass (None: sized from the device)

    def fingerprint(self, *, evaluates: bool = True) -> dict:
        """The runner settings that change a run's numbers (beside the model, fingerprinted on its own):
        the chunking changes sums' order (≈1e-7), and with `evaluates` the evaluation passes' padding
        (`eval_tokens`) the scores' round-off; `source` never evaluates, so it leaves that out."""
        return {
            "max_source_length": self.max_source_length,
            "max_target_length": self.max_target_length,
            "precision": self.precision,
            "chunk_sequences": self.chunk_sequences,
            **({"eval_tokens": self.eval_tokens} if evaluates else {}),
        }


def load_runner(config: RunnerConfig, device: torch.device | None = None, progress: Progress = SILENT) -> FrozenT5Runner:
    """Load and freeze the model, apply the speed options, and wrap it as a `FrozenT5Runner`
    (on `device`, default: the configured one)."""
    device = device or resolve_device(config.device)
    dtype = autocast_dtype(config.precision, device)
    with progress.status(f"loading {config.model} …"):
        model, tokenizer = load_frozen_t5(config.model, device=device)
    if config.grad_checkpointing:
        enable_gradient_checkpointing(model)
    if config.compile:
        compile_model(model)
    return FrozenT5Runner(
        model,
        tokenizer,
        max_source_length=config.max_source_length,
        max_target_length=config.max_target_length,
        autocast_dtype=dtype,
        chunk_sequences=config.chunk_sequences,
        eval_tokens=config.eval_tokens,
    )


def check_step_fits(
    runner: FrozenT5Runner,
    examples: list,
    *,
    sequences: int,
    prompt_length: int,
    trainable_elements: int,
    particles: int = 1,
    what: str,
    lower: str,
    host_examples: int = 0,
    setting: tuple[str, int, int] | None = None,
) -> None:
    """Refuse, before anything is allocated, a training step that would not fit in memory.

    `host_examples`: the examples a step's batch holds and tokenises on the host
    (`runtime.memory.host_batch_bytes`), counted with the device's estimate on a CPU and against the
    host's memory on a GPU; `setting` = (flag, value, examples per unit of it) names what to lower
    and the largest value that fits when the batch is what does not fit.

    The step's peak is estimated from the model's shape, the sequences of one pass of the step's
    chunk plan (the runner's `chunk_sequences`, or the automatic plan's chunk of the `sequences`
    prompted sequences per step: `runner/plan.py`) and the longest source and target among (up to
    2,000 of) `examples`, capped at the runner's maximum lengths
    (`runtime.memory.estimate_training_bytes`). Gradient checkpointing stores far less, so a run
    with it is not checked.
    """
    from bmtpt_cli.runner.plan import sequences_per_pass
    from bmtpt_cli.errors import BmtptError
    from bmtpt_cli.runtime.memory import (
        FIT_FRACTION, available_bytes, check_fits, estimate_training_bytes, format_bytes, host_batch_bytes, t5_dims,
    )

    model = runner.model
    checkpointing = model.is_activation_checkpointing if hasattr(model, "is_activation_checkpointing") else model.is_gradient_checkpointing
    if checkpointing:
        return
    sample = examples[:2000]
    source = min(runner.max_source_length, max(len(runner.tokenizer(e.source).input_ids) for e in sample))
    target = min(runner.max_target_length, max(len(runner.tokenizer(e.target).input_ids) for e in sample))
    dtype_bytes = 2 if runner.autocast_dtype == torch.bfloat16 else 4
    dims, available = t5_dims(runner.model.config), available_bytes(runner.device)
    shape = dict(source_length=prompt_length + source, target_length=target, trainable_elements=trainable_elements,
                 dtype_bytes=dtype_bytes, particles=particles)
    if runner.chunk_sequences is not None:
        per_pass = min(sequences, runner.chunk_sequences)
    else:  # the automatic plan's chunk at the longest lengths (on a GPU: the largest that fits, at least 1)
        per_pass, _ = sequences_per_pass(device_type=runner.device.type, memory_bytes=available, dims=dims,
                                         sequences=sequences, **shape)
    estimate = estimate_training_bytes(**dims, sequences=per_pass, **shape)
    check_fits(estimate, available, what=what.format(length=prompt_length + source), lower=lower)  # the tensors alone first
    if host_examples:  # the host-side batch: with the step's tensors on a CPU, alone against the host's memory on a GPU
        on_cpu = runner.device.type == "cpu"
        per_example = host_batch_bytes(1, source, target)
        room = FIT_FRACTION * (available if on_cpu else available_bytes("cpu")) - (estimate if on_cpu else 0)
        if host_examples * per_example > room and setting is not None:
            flag, value, per_unit = setting
            fits = int(max(0, room) // (per_example * per_unit))
            fix = f"lower {flag} to at most {fits:,}" if fits else f"lower {lower}"
            raise BmtptError(
                f"{flag} {value:,} makes a step hold {host_examples:,} examples of up to {source + target} tokens, about "
                f"{format_bytes(host_examples * per_example)} on the host beside {format_bytes(estimate if on_cpu else 0)} "
                f"for the step's tensors, but {format_bytes(available if on_cpu else available_bytes('cpu'))} are available: {fix}"
            )
        if on_cpu:
            estimate += host_examples * per_example
    check_fits(estimate, available, what=what.format(length=prompt_length + source), lower=lower)
