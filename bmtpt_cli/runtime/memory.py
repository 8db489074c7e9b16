"""Memory a training step needs, memory the process can have, and refusing a run that cannot fit.

A run whose first step needs more memory than there is is killed by the kernel (exit 137) or dies
with a CUDA out-of-memory error after the model has loaded. The jobs instead estimate the peak of one
step before allocating anything large (`estimate_training_bytes`), read what is available to this
process (`available_bytes`) and refuse with one line naming both and the setting to lower
(`check_fits`). Nothing here knows about the command line: the caller passes its own wording.

The model's weights are not in the estimate: measure `available_bytes` after the model is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bmtpt_cli.errors import BmtptError

__all__ = [
    "ALLOCATOR_HEADROOM",
    "FIT_FRACTION",
    "STEP_OVERHEAD",
    "available_bytes",
    "check_batch_within_data",
    "check_fits",
    "estimate_training_bytes",
    "host_batch_bytes",
    "format_bytes",
    "t5_dims",
]

FIT_FRACTION = 0.9
"""A run is refused when its estimate exceeds this share of the available memory."""

ALLOCATOR_HEADROOM = (3, 2)
"""Activations cost 3/2 of the tensors stored for backward: the allocator keeps part of the forward's
freed temporaries (glibc's heap on the CPU, PyTorch's caching allocator on CUDA)."""

STEP_OVERHEAD = 64 * 2**20
"""A first step's fixed cost beyond its tensors (thread pools, allocator arenas, lazy imports):
measured 12–18 MiB on the CPU; 64 MiB is counted."""

_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge number (~2⁶³ rounded to pages)
_CGROUP_ROOT = Path("/sys/fs/cgroup")


# --------------------------------------------------------------------------------------- estimate
def estimate_training_bytes(
    *,
    d_model: int,
    num_layers: int,
    num_decoder_layers: int,
    num_heads: int,
    d_ff: int,
    vocab_size: int,
    sequences: int,
    source_length: int,
    target_length: int,
    trainable_elements: int,
    dtype_bytes: int = 4,
    d_kv: int | None = None,
    gated: bool = False,
    particles: int = 1,
) -> int:
    """Peak extra memory (bytes) of one training step through a frozen T5, prompts the only trainables.

    One forward and backward of `sequences` sequences (N = M·B for a source step, B for adaptation)
    of S = `source_length` encoder positions (prompt length l + input tokens) and T = `target_length`
    decoder positions, with gradients only w.r.t. the input embeddings, so no frozen linear layer
    keeps its input for backward. With d = `d_model`, H = `num_heads`, k = H·`d_kv` (the attention
    width; d when `d_kv` is None), f = `d_ff`, V = `vocab_size`, E and D the encoder and decoder
    layers and b = `dtype_bytes` (4: float32, 2: bf16 autocast), what T5
    stores for backward is, per sequence (counted element by element with saved-tensor hooks on
    transformers 5, SDPA attention):

        encoder layer, per position:  2d   (the inputs of its two RMSNorms: the residual stream)
                                    + 4k   (q, k, v and the attention output, kept by SDPA)
                                    + H·S  (the (H, S, S) attention mask with the position bias,
                                            kept by SDPA; the eager path keeps the probabilities)
                                    + F    (feed-forward: F = f, the ReLU output; F = 6f for the
                                            gated-GELU of T5 v1.1 / Flan-T5, `gated=True`)
                                    + H    (the softmax log-sum-exp)
        decoder layer, per position:  3d + 6k (self q, k, v, output; cross q, output) + F
                                    + H·T + H·S (self- and cross-attention masks) + 2H
                    and per source position: 2k (the cross-attention keys and values of the layer)
        final norms:                  d per encoder and per decoder position
        inputs:                       d per encoder position (prompts expanded to N and the token
                                      embeddings, alive until the forward returns)
        loss:                         12·V bytes per decoder position, in float32: the logits and
                                      their log-softmax at the end of the forward, then the
                                      log-softmax with its gradient and the logits' gradient at
                                      the start of the backward

    so that the stored tensors take, in bytes,

        stored = b·N·[S·(E·(2d + 4k + F + H·S + H) + 2d)
                      + T·(D·(3d + 6k + F + H·T + H·S + 2H) + d) + S·D·2k] + 12·N·T·V

    and the activations cost 1.5 × stored (`ALLOCATOR_HEADROOM`): the allocator keeps part of the
    forward's freed temporaries (norm squares, pre-ReLU values, projections), measured 1.2–1.4 ×
    stored on the CPU. The trainable tensors (float32) cost 16·P bytes with P = `trainable_elements`:
    the parameter, its gradient and AdamW's two moments. The SVGD update after the backward adds
    about 6 (M, P/M)-sized float32 temporaries and, for M = `particles` > 1, the (M, M) kernel work
    (distances and the kernel on the device, ~12 bytes per M², and the distances' host copy as
    Python floats for the median bandwidth and the spread, 44.5 bytes per M² measured by
    tracemalloc at M = 100–2000): 64 bytes per M² counted. The memory freed after the backward is not handed back to the
    system soon enough to be reused by those large blocks, so they add up. The estimate is

        64 MiB + 16·P + 1.5·stored + 24·P + 64·M²

    (64 MiB: `STEP_OVERHEAD`, a first step's fixed cost). It is upper-ish: it counts every attention
    mask per sequence and per layer (a batch without padding shares one) and decoder layer 0's
    self-attention (which sees no gradient). Calibrated on the CPU against the peak RSS growth of a
    real first `source_update` (`tiny` and a t5-small-shaped T5, M·B from 8 to 4000 sequences, S
    from 12 to 411): the estimate is 1.15–1.6 × the measured peak (2 × without padding, 2.5 × at
    40 MiB where the fixed cost dominates), never below it. Gradient checkpointing (which needs
    less) is not modelled.
    """
    counts = {
        "d_model": d_model, "num_layers": num_layers, "num_decoder_layers": num_decoder_layers,
        "num_heads": num_heads, "d_ff": d_ff, "vocab_size": vocab_size, "sequences": sequences,
        "source_length": source_length, "target_length": target_length,
        "trainable_elements": trainable_elements, "dtype_bytes": dtype_bytes, "particles": particles,
    }
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    d, h, n, s, t = d_model, num_heads, sequences, source_length, target_length
    k = num_heads * d_kv if d_kv is not None else d_model
    ff = 6 * d_ff if gated else d_ff
    encoder = s * (num_layers * (2 * d + 4 * k + ff + h * s + h) + 2 * d)
    decoder = t * (num_decoder_layers * (3 * d + 6 * k + ff + h * t + h * s + 2 * h) + d)
    cross_keys_values = s * num_decoder_layers * 2 * k
    stored = dtype_bytes * n * (encoder + decoder + cross_keys_values) + 12 * n * t * vocab_size
    activations = stored * ALLOCATOR_HEADROOM[0] // ALLOCATOR_HEADROOM[1]
    kernel = 64 * particles * particles if particles > 1 else 0
    return STEP_OVERHEAD + 16 * trainable_elements + activations + 24 * trainable_elements + kernel


def t5_dims(config: Any) -> dict[str, Any]:
    """The model-shape keywords of `estimate_training_bytes` read from a (Hugging Face) T5 config."""
    return {
        "d_model": config.d_model,
        "num_layers": config.num_layers,
        "num_decoder_layers": getattr(config, "num_decoder_layers", None) or config.num_layers,
        "num_heads": config.num_heads,
        "d_ff": config.d_ff,
        "vocab_size": config.vocab_size,
        "d_kv": getattr(config, "d_kv", None),
        "gated": bool(getattr(config, "is_gated_act", False)),
    }


HOST_EXAMPLE_BYTES = 10 * 1024
"""Host memory of one example of a step's batch beside its tokens: the batch entry and the tokenizer's
per-text output while a batch is tokenised (`host_batch_bytes`)."""

HOST_TOKEN_BYTES = 64
"""Host memory per padded (input + target) token of a step's batch (`host_batch_bytes`)."""


def host_batch_bytes(examples: int, source_length: int, target_length: int) -> int:
    """Peak host memory (bytes) of holding and tokenising a step's batch of `examples` examples whose
    padded inputs have `source_length` tokens and targets `target_length`:

        examples · (HOST_EXAMPLE_BYTES + HOST_TOKEN_BYTES · (source_length + target_length))

    It counts the batch's (task, example) entries, the tokenizer's output for every text at once,
    the token ids the runner keeps per text, the padded rows as Python lists and the int64 ids,
    mask and labels. Measured (RSS growth of `FrozenT5Runner.encode` on 50,000 distinct texts):
    tiny 3.7 KiB at 107 + 9 tokens and 6.4 KiB at 256 + 9, the toy model's word tokenizer 9.3 KiB at
    42 + 2; the formula gives 17, 27 and 13 KiB. Prompts are not host memory: they are prepended on
    the model's device.
    """
    for name, value in {"examples": examples, "source_length": source_length, "target_length": target_length}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return examples * (HOST_EXAMPLE_BYTES + HOST_TOKEN_BYTES * (source_length + target_length))


def check_batch_within_data(drawn: int, available: dict[str, int], *, setting: str, value: int, per_unit: int = 1) -> None:
    """Refuse a step that draws more examples than the training data holds: `drawn` examples a step
    (the setting `setting` = `value`, `per_unit` examples per unit of it) from tasks of `available`
    training examples. Such a batch repeats each example many times a step (the draws are with
    replacement) and only costs memory and time: `adapt --batch-size 1000000` on two tasks of 320
    examples tokenised a million texts a step. The fix names the largest value that draws no more
    than the data holds."""
    total = sum(available.values())
    if drawn <= total:
        return
    most = max(1, total // per_unit)
    tasks = ", ".join(f"{name} {count:,}" for name, count in available.items())
    raise BmtptError(
        f"{setting} {value:,} draws {drawn:,} examples a step, more than the training data holds ({total:,}: {tasks}): "
        f"lower {setting} to at most {most:,}"
    )


# --------------------------------------------------------------------------------------- available
def available_bytes(device: Any) -> int:
    """Memory this process can still allocate on `device` (a `torch.device` or a string), in bytes.

    CUDA: the device's free memory (`torch.cuda.mem_get_info`) plus what PyTorch's caching
    allocator holds reserved but unused. CPU (and anything else): `MemAvailable` of /proc/meminfo,
    capped by the cgroup (container) limit when one applies — v2 `memory.max − memory.current`, v1
    `memory.limit_in_bytes − memory.usage_in_bytes`, reclaimable page cache (`inactive_file`) not
    counted as used — or, without /proc, the free physical pages `os.sysconf` reports.
    """
    kind = getattr(device, "type", None) or str(device).split(":", 1)[0]
    if kind == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, cached))
    return _host_available_bytes()


def _host_available_bytes() -> int:
    candidates = [value for value in (_meminfo_available(), _cgroup_available()) if value is not None]
    if not candidates:
        candidates = [value for value in (_sysconf_available(),) if value is not None]
    if not candidates:
        return _UNLIMITED  # nothing to read on this platform: do not refuse on a guess
    return max(0, min(candidates))


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    if "MemAvailable" in fields:
        return fields["MemAvailable"]
    if "MemFree" in fields:  # kernels before 3.14
        return fields["MemFree"] + fields.get("Cached", 0) + fields.get("Buffers", 0)
    return None


def _sysconf_available() -> int | None:
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2: no limit) → None


def _stat_value(path: Path, *names: str) -> int:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] in names and parts[1].isdigit():
            return int(parts[1])
    return 0


def _cgroup_dirs() -> tuple[list[Path], list[Path]]:
    """The cgroup v2 directories and the v1 memory-controller directories whose limits apply to us:
    our own cgroup's and its ancestors' (a limit set on a parent caps its children too)."""
    v2, v1 = [], []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _id, _, rest = line.partition(":")
        controllers, _, rel = rest.partition(":")
        rel = rel.strip().strip("/")
        if controllers == "":  # v2, mounted at the root (or at unified/ beside v1 controllers)
            v2 += _with_ancestors(_CGROUP_ROOT, rel) + _with_ancestors(_CGROUP_ROOT / "unified", rel)
        elif "memory" in controllers.split(","):
            v1 += _with_ancestors(_CGROUP_ROOT / "memory", rel)
    v2.append(_CGROUP_ROOT)  # inside a container's cgroup namespace the root is our own cgroup
    v1.append(_CGROUP_ROOT / "memory")
    return list(dict.fromkeys(v2)), list(dict.fromkeys(v1))


def _with_ancestors(root: Path, rel: str) -> list[Path]:
    parts = [part for part in rel.split("/") if part and part != ".."]
    return [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _cgroup_available() -> int | None:
    """The smallest `limit − (usage − inactive page cache)` over the cgroups that set a limit."""
    v2, v1 = _cgroup_dirs()
    found = []
    for directory in v2:
        limit = _read_int(directory / "memory.max")
        usage = _read_int(directory / "memory.current")
        if limit is not None and usage is not None and limit < _UNLIMITED:
            found.append(limit - usage + _stat_value(directory / "memory.stat", "inactive_file"))
    for directory in v1:
        limit = _read_int(directory / "memory.limit_in_bytes")
        usage = _read_int(directory / "memory.usage_in_bytes")
        if limit is not None and usage is not None and limit < _UNLIMITED:
            found.append(limit - usage + _stat_value(directory / "memory.stat", "total_inactive_file", "inactive_file"))
    return min(found) if found else None


# --------------------------------------------------------------------------------------- refusing
def format_bytes(count: int | float) -> str:
    """A size for people: `512 bytes`, `3.0 KiB`, `27.4 GiB` (powers of 1024)."""
    value = float(count)
    if abs(value) < 1024:
        return f"{int(value)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:,.1f} {unit}"
    raise AssertionError("unreachable")


def check_fits(estimate: int, available: int, *, what: str, lower: str) -> None:
    """Refuse a run whose estimate exceeds `FIT_FRACTION` (90 %) of the available memory.

    `what` describes the run's size (e.g. `1,000,000 particles × 12 sequences of 264 tokens`) and
    `lower` the settings that shrink it (e.g. `--particles or --examples-per-task`); the message is
    `this run needs about 27.4 GiB (…) but 18.2 GiB are available: lower …`, one line.
    """
    if estimate <= FIT_FRACTION * available:
        return
    size = f" ({what})" if what else ""
    message = (
        f"this run needs about {format_bytes(estimate)}{size} but {format_bytes(max(0, available))} are available: "
        f"lower {lower}"
    )
    raise BmtptError(" ".join(message.split()))
