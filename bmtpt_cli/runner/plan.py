"""How many sequences go through the frozen T5 in one pass: the chunk plan of a step and of scoring (SPEC §2, §4).

The particles' losses are separable, so a source step's M·B sequences can go through the model in
chunks of particles (and of examples) with the gradients accumulated: the same result to float32
round-off. Everything here is a pure function of (device type, memory, model shape, batch shape):

* **CPU**: the largest chunk whose biggest activation — a feed-forward hidden state (N, S, f), the
  attention scores / position bias (N, H, S, S) or the logits (N, T, V) — stays within
  `CPU_BLOCK_BYTES`, glibc's largest mmap threshold. Bigger buffers are mapped afresh and
  page-faulted on every pass (benchmark 3: 88,000 faults per t5-small pass), and the memory-bound
  elementwise ops run over buffers that no cache holds; below it they are recycled from the heap.
* **GPU** (any other device): one pass while the step's estimated peak (`runtime.memory`) fits in
  `FIT_FRACTION` of the memory read when the runner was made, else the largest chunk that fits.

`chunk_sequences` (the `--chunk-sequences` setting) forces the number of sequences per pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bmtpt_cli.runtime.memory import FIT_FRACTION, estimate_training_bytes

CPU_BLOCK_BYTES = 32 * 2**20
"""The largest single activation a CPU pass should make: glibc's `DEFAULT_MMAP_THRESHOLD_MAX` (64-bit)."""

EVAL_LIVE_ACTIVATIONS = 4
"""On a GPU, an evaluation pass is counted as 4 of its largest activation alive at once (forward only, no
graph) plus the encoder states and every decoder layer's cross-attention keys and values, in half of the
memory read when the runner was made."""


@dataclass(frozen=True)
class PassPlan:
    """M particles × B examples cut into passes of `particles_per_pass` × `examples_per_pass` sequences."""

    particles: int  # M
    examples: int  # B
    particles_per_pass: int
    examples_per_pass: int
    reason: str  # how the chunk size was chosen, for the log

    @property
    def passes(self) -> int:
        return math.ceil(self.particles / self.particles_per_pass) * math.ceil(self.examples / self.examples_per_pass)

    @property
    def chunked(self) -> bool:
        return self.passes > 1

    def chunks(self) -> list[tuple[slice, slice]]:
        """(particle rows, example rows) of every pass, particle-major."""
        return [
            (slice(j, min(j + self.particles_per_pass, self.particles)), slice(i, min(i + self.examples_per_pass, self.examples)))
            for j in range(0, self.particles, self.particles_per_pass)
            for i in range(0, self.examples, self.examples_per_pass)
        ]

    def __str__(self) -> str:
        total = self.particles * self.examples
        if not self.chunked:
            return f"{self.particles} × {self.examples} = {total} sequences in one pass ({self.reason})"
        return (f"{self.particles} × {self.examples} = {total} sequences in {self.passes} passes of "
                f"{self.particles_per_pass} × {self.examples_per_pass} ({self.reason})")


def largest_activation_bytes(dims: dict, *, source_length: int, target_length: int, dtype_bytes: int = 4) -> int:
    """Bytes per sequence of a T5 pass's biggest single tensor: max of the feed-forward hidden state
    S·f (6f gated), the attention scores / position bias H·S², the cross-attention H·T·S, and the
    float32 logits T·V (`dims`: `runtime.memory.t5_dims`)."""
    s, t = source_length, target_length
    ff = dims["d_ff"] * (6 if dims.get("gated") else 1)
    lm = max(s * ff, dims["num_heads"] * s * s, dims["num_heads"] * t * s) * dtype_bytes
    return max(lm, 4 * t * dims["vocab_size"])


def sequences_per_pass(
    *, device_type: str, memory_bytes: int, dims: dict, sequences: int, source_length: int, target_length: int,
    dtype_bytes: int = 4, trainable_elements: int = 0, particles: int = 1,
) -> tuple[int, str]:
    """How many of a training step's `sequences` go through the model at once, and why (see the module)."""
    if device_type == "cpu":
        per = largest_activation_bytes(dims, source_length=source_length, target_length=target_length, dtype_bytes=dtype_bytes)
        n = max(1, min(sequences, CPU_BLOCK_BYTES // per))
        return n, "cpu: largest activation ≤ 32 MiB"

    def fits(n: int) -> bool:
        estimate = estimate_training_bytes(
            **dims, sequences=n, source_length=source_length, target_length=target_length,
            trainable_elements=trainable_elements, dtype_bytes=dtype_bytes, particles=particles,
        )
        return estimate <= FIT_FRACTION * memory_bytes

    if fits(sequences):
        return sequences, f"{device_type}: fits in memory"
    low, high = 1, sequences  # fits(low) assumed (else check_fits refuses the run); the largest that fits
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low, f"{device_type}: the largest chunk that fits in memory"


def plan_step(
    *, particles: int, examples: int, device_type: str, memory_bytes: int, dims: dict, source_length: int,
    target_length: int, dtype_bytes: int = 4, trainable_elements: int = 0, chunk_sequences: int | None = None,
) -> PassPlan:
    """The chunk plan of a source step of M = `particles` × B = `examples` sequences of S encoder and T
    decoder positions: whole particles per pass while a pass holds B sequences (balanced: 5 particles
    at 2 a pass → 2, 2, 1), else one particle and a share of the examples per pass."""
    total = particles * examples
    if chunk_sequences is not None:
        per, reason = min(total, chunk_sequences), f"--chunk-sequences {chunk_sequences}"
    else:
        per, reason = sequences_per_pass(
            device_type=device_type, memory_bytes=memory_bytes, dims=dims, sequences=total,
            source_length=source_length, target_length=target_length, dtype_bytes=dtype_bytes,
            trainable_elements=trainable_elements, particles=particles,
        )
    if per >= total:
        return PassPlan(particles, examples, particles, examples, reason)
    if per >= examples:
        groups = math.ceil(particles / (per // examples))
        return PassPlan(particles, examples, math.ceil(particles / groups), examples, reason)
    groups = math.ceil(examples / per)
    return PassPlan(particles, examples, 1, math.ceil(examples / groups), reason)


def examples_per_eval_pass(
    *, device_type: str, memory_bytes: int, dims: dict, length: int, target_length: int, dtype_bytes: int = 4,
    eval_tokens: int | None = None, cap: int | None = None,
) -> int:
    """Examples of padded length `length` (prompt + input) an evaluation pass takes: `eval_tokens`
    padded encoder positions when given; else on a CPU the largest activation ≤ `CPU_BLOCK_BYTES`, on
    a GPU what fits in half the memory (`EVAL_LIVE_ACTIVATIONS`); at most `cap`, at least 1."""
    if eval_tokens is not None:
        n = eval_tokens // max(length, 1)
    else:
        per = largest_activation_bytes(dims, source_length=length, target_length=target_length, dtype_bytes=dtype_bytes)
        if device_type == "cpu":
            n = CPU_BLOCK_BYTES // per
        else:
            width = dims["num_heads"] * (dims.get("d_kv") or dims["d_model"] // dims["num_heads"])
            cache = (2 * dims["num_decoder_layers"] * width + dims["d_model"]) * length * dtype_bytes
            n = int(FIT_FRACTION * memory_bytes) // 2 // (EVAL_LIVE_ACTIVATIONS * per + cache)
    return max(1, min(n, cap) if cap is not None else n)


def length_buckets(lengths: list[int], per_pass) -> list[list[int]]:
    """Indices of the examples sorted by length (stable), cut into consecutive chunks: a chunk grows
    while `per_pass(padded length)` — examples allowed at the chunk's longest — admits one more."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        if chunks and len(chunks[-1]) < per_pass(lengths[i]):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return chunks
