"""The GPU benchmark suite: everything worth measuring on a GPU, in one command, in a few minutes.

    pip install --no-deps -e . && HF_HUB_OFFLINE=1 timeout 480 python benchmarks/gpu_suite.py --device cuda --out $OUT/gpu

writes `DIR/gpu_suite.json` (every figure, machine-readable) and `DIR/gpu_suite.md` (the report)
after EVERY measurement, so a run cut short (the time limit, an outer `timeout`, a lost machine)
still reports what it measured; sections not reached say why. `--device cpu --quick` is the smoke
run (small shapes, a few seconds of measuring) the tests use.

What is measured is the shipped code, never a re-implementation:

* the source step is `workloads.SourceStep`, i.e. `bmtpt_cli.source.svgd.start_source` +
  `source_update` (tokenising, the batched M·B forward, the backward into the particles, the
  Damped-SVGD update, AdamW, the finiteness checks and the step record);
* the runner is the shipped `FrozenT5Runner` with the precision of `runner.model.autocast_dtype`,
  and the speed options are `runner.model.compile_model` / `enable_gradient_checkpointing`,
  applied as `runner.load.load_runner` applies them (only the model is built here: random weights
  from a `T5Config` of the real shape, as nothing can be downloaded on the GPU machine);
* the adaptation step is `bmtpt_cli.adapter.train.adapt` (eval_every=None) timed per step;
* evaluation is `bmtpt_cli.scoring.score.predict` with decode="rank" and "generate";
* the SVGD share is read from the step's own `bmtpt.svgd` profiler range (`harness.profile_ranges`
  via `SourceStep.profile`; on CUDA also the GPU kernel time inside each range).

Timing: CUDA events around each step on a GPU (the step ends in a `.item()`, which synchronises),
`time.perf_counter` on a CPU; warm-up steps excluded; the median of the timed steps. Peak memory:
`torch.cuda.max_memory_allocated` with the peak reset before each measurement (null on a CPU).
Model FLOPs and the peak they are compared with: see `FLOP_FORMULA` and `BF16_PEAK_TFLOPS`.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # the time limit counts from the start of the process (as an outer `timeout` does)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (offline environment variables and the repository on sys.path, before transformers)
import torch  # noqa: E402
import workloads  # noqa: E402

SUITE_VERSION = 1
JSON_NAME = "gpu_suite.json"
MD_NAME = "gpu_suite.md"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "bmtpt-gpu-suite"

# ============================================================================ model shapes
MODEL_SHAPES = {
    # the real checkpoints' shapes (T5 v1: ReLU feed-forward, tied embeddings), random weights
    "t5-base": dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12),
    "t5-large": dict(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24, num_decoder_layers=24),
    # --quick: t5-small's width and vocabulary with 2+2 layers; and bmtpt's own `tiny` (d 64, vocab 384)
    "t5-small-2l": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=2, num_decoder_layers=2),
}
T5_COMMON_KW = dict(workloads.T5_COMMON_KW)  # vocab 32,128; decoder_start/pad/eos ids (transformers 5 needs them)

# ============================================================================ FLOPs and peaks
FLOP_FORMULA = (
    "Model FLOPs of one training step with FROZEN weights = 4·(P_E·T_E + P_D·T_D) + 3·A. "
    "P_E = weights applied to every encoder token (the encoder layers' attention 4·d·h·d_kv and feed-forward "
    "2·d·d_ff matrices, plus the decoder's cross-attention K and V projections 2·d·h·d_kv per decoder layer, which "
    "read the encoder states); P_D = weights applied to every decoder token (decoder self-attention 4·d·h·d_kv, "
    "cross-attention Q and O 2·d·h·d_kv, feed-forward 2·d·d_ff per layer, and the LM head d·V); T_E = M·B·(l+n) "
    "encoder tokens, T_D = M·B·t decoder tokens. A matmul with a weight costs 2 FLOPs per weight per token forward; "
    "the backward needs only the input gradient dX = dY·Wᵀ (another 2), not the weight gradient dW = Xᵀ·dY (the "
    "weights are frozen: autograd skips it), hence 4 — not the 6·N·tokens of training the weights. "
    "A = forward FLOPs of the attention matmuls QKᵀ and softmax·V (2·2·L_q·L_k·h·d_kv per layer and sequence, "
    "encoder self, decoder self and cross attention; no causal discount); both operands are activations, so their "
    "backward costs 2·A and the total 3·A. Not counted: embedding lookups, norms, softmax, activations, the loss, "
    "the SVGD update and AdamW (elementwise, negligible), and the recomputed forward of gradient checkpointing "
    "(model FLOPs, not hardware FLOPs). Forward-only passes (evaluation) would be 2·(P_E·T_E + P_D·T_D) + A. "
    "MFU = model FLOPs per step ÷ step time ÷ the device's dense bf16 peak (fp32 runs are compared with the "
    "bf16 peak too: how far they are from what the chip could do)."
)

BF16_PEAK_TFLOPS = {
    # dense (no 2:4 sparsity) bf16 tensor-core peaks from the vendors' data sheets; first match wins,
    # so the more specific names come first. Unknown GPU (or CPU): no peak, MFU null.
    "B200": 2250.0,
    "GH200": 989.4,
    "H200 NVL": 835.0,
    "H200": 989.4,  # H200 SXM
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.4,  # H100 SXM ("NVIDIA H100 80GB HBM3")
    "H800": 989.4,
    "A100": 312.0,  # SXM and PCIe
    "A800": 312.0,
    "L40S": 362.0,
    "L40": 181.0,
    "L4": 121.0,
    "A10": 125.0,  # not the A10G (no published dense bf16 figure here: unknown, MFU null)
    "RTX 4090": 165.2,
    "RTX 6000 Ada": 364.2,
    "A6000": 154.8,
}


def bf16_peak(gpu_name: str | None) -> tuple[float | None, str | None]:
    """(peak TFLOPS, the table key that matched) for a device name; (None, None) if unknown."""
    if not gpu_name:
        return None, None
    for key, tflops in BF16_PEAK_TFLOPS.items():
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", gpu_name):
            return tflops, key
    return None, None


def t5_weight_params(config) -> dict[str, int]:
    """Weights applied per encoder token (P_E) and per decoder token (P_D), see FLOP_FORMULA."""
    d, inner, ff = config.d_model, config.num_heads * config.d_kv, config.d_ff
    ff_mats = 3 if getattr(config, "is_gated_act", False) else 2
    enc_layers, dec_layers = config.num_layers, config.num_decoder_layers or config.num_layers
    per_encoder_token = enc_layers * (4 * d * inner + ff_mats * d * ff) + dec_layers * 2 * d * inner
    per_decoder_token = dec_layers * (6 * d * inner + ff_mats * d * ff) + d * config.vocab_size
    return {"per_encoder_token": per_encoder_token, "per_decoder_token": per_decoder_token}


def t5_flops(config, sequences: int, encoder_len: int, decoder_len: int, *, backward: bool = True) -> dict[str, float]:
    """Model FLOPs of one pass over `sequences` sequences (FLOP_FORMULA); `backward`: + input-grad backward."""
    params = t5_weight_params(config)
    inner = config.num_heads * config.d_kv
    enc_layers, dec_layers = config.num_layers, config.num_decoder_layers or config.num_layers
    linear = 2 * (params["per_encoder_token"] * sequences * encoder_len + params["per_decoder_token"] * sequences * decoder_len)
    attention = 4 * inner * sequences * (enc_layers * encoder_len**2 + dec_layers * (decoder_len**2 + decoder_len * encoder_len))
    total = (2 * linear + 3 * attention) if backward else (linear + attention)
    return {"linear_forward": float(linear), "attention_forward": float(attention), "total": float(total)}


# ============================================================================ environment
def environment(device: torch.device) -> dict:
    import transformers

    env = {
        "device": str(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "gpu_name": None,
        "gpu_memory_bytes": None,
        "gpu_capability": None,
        "gpu_multiprocessors": None,
        "bf16_supported": None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cpu": asdict(harness.Machine.detect()),
    }
    try:
        import bmtpt_cli

        env["bmtpt_cli"] = getattr(bmtpt_cli, "__version__", "unknown")
    except ImportError:  # pragma: no cover
        env["bmtpt_cli"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu_name=props.name, gpu_memory_bytes=int(props.total_memory), gpu_capability=f"{props.major}.{props.minor}",
            gpu_multiprocessors=props.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported(),
        )
        env["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        try:
            import subprocess

            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            env["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env


# ============================================================================ the plan: shapes per mode
@dataclass(frozen=True)
class Plan:
    models: tuple[str, ...]  # source step (and grad checkpointing) on each
    main: str  # the model of every other section
    precisions: tuple[str, ...]
    particles: int  # M
    tasks: int  # source tasks per step; B = tasks · examples_per_task
    prompt_length: int  # l
    source_len: int  # n (source tokens, </s> included)
    target_len: int  # t
    sweep_particles: tuple[int, ...]
    sweep_examples: tuple[int, ...]
    fit_examples: tuple[int, ...]  # examples per task tried after the sweep (M = particles) until one does not fit
    fit_max_sequences: int
    warmup: int
    repeats: int
    fit_repeats: int
    adapt_batch: int
    adapt_steps: int
    adapt_warmup: int
    eval_examples: int
    eval_generate_batches: tuple[int, ...]
    eval_repeats: int
    profile_steps: int


FULL = Plan(
    models=("t5-base", "t5-large"), main="t5-base", precisions=("bf16", "fp32"), particles=5, tasks=6,
    prompt_length=100, source_len=256, target_len=4, sweep_particles=(1, 5, 10, 20), sweep_examples=(1, 4, 16),
    fit_examples=(32, 64, 128, 256, 512), fit_max_sequences=16384, warmup=3, repeats=10, fit_repeats=2,
    adapt_batch=32, adapt_steps=13, adapt_warmup=3, eval_examples=512, eval_generate_batches=(32, 256),
    eval_repeats=3, profile_steps=5,
)
QUICK = Plan(
    models=("tiny", "t5-small-2l"), main="tiny", precisions=("bf16", "fp32"), particles=3, tasks=2, prompt_length=8,
    source_len=32, target_len=4, sweep_particles=(1, 3), sweep_examples=(1, 2), fit_examples=(4,),
    fit_max_sequences=64, warmup=1, repeats=2, fit_repeats=1, adapt_batch=4, adapt_steps=4, adapt_warmup=1,
    eval_examples=12, eval_generate_batches=(4,), eval_repeats=1, profile_steps=1,
)

SECTIONS = {
    "source_step": "Source step (shipped source_update): bf16 autocast vs fp32",
    "grad_checkpointing": "Source step with --grad-checkpointing",
    "svgd_share": "Share of the SVGD update in the step (bmtpt.svgd profiler range)",
    "scaling_particles": "Step time and memory against particles M",
    "scaling_examples": "Step time and memory against examples per task",
    "max_fit": "Largest M·B that fits, and where the step stops being launch-bound",
    "adaptation": "Adaptation step (adapter.train.adapt; batch 32 in the full run)",
    "evaluation": "Evaluation throughput: rank scoring vs greedy generation (3-label task)",
    "peer": "Source step against a loop of M PEFT prompt-tuning models; the chunk plan and --chunk-sequences",
    "compile": "Source step with --compile (torch.compile of the runner's model)",
}
"""Section keys in run order; compile last: it is the slowest to set up and the likeliest to fail."""


# ============================================================================ the report (written after every measurement)
class Terminated(BaseException):
    """SIGTERM (an outer `timeout`): stop measuring, write what there is (a BaseException, like Ctrl-C, so that
    no `except Exception` of a measurement takes it for the measurement's own failure)."""


SIGNALLED: list[int] = []
"""Signals received. The handler raises `Terminated`, but code it interrupts may wrap that exception in its
own (torch.compile does), so every handler of a measurement's failure checks this list too."""


def on_signal(signum, frame) -> None:  # noqa: ARG001
    SIGNALLED.append(signum)
    raise Terminated(f"signal {signum}")


def reraise_if_signalled(exc: BaseException) -> None:
    if SIGNALLED and not isinstance(exc, Terminated):
        raise Terminated(f"signal {SIGNALLED[0]} (surfaced as {type(exc).__name__})") from exc


class Report:
    def __init__(self, out: Path, *, args: argparse.Namespace, plan: Plan, device: torch.device, time_limit: float):
        self.out = out
        self.time_limit = time_limit
        self.data: dict = {
            "suite": "bmtpt GPU benchmark suite",
            "version": SUITE_VERSION,
            "finished": False,  # the script reached its end (not cut short by a signal)
            "complete": False,  # ... and every section is done
            "quick": bool(args.quick),
            "device": str(device),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "time_limit_s": time_limit,
            "elapsed_s": None,
            "plan": asdict(plan),
            "environment": None,
            "flops": {"formula": FLOP_FORMULA, "bf16_peak_tflops_table": BF16_PEAK_TFLOPS, "peak_tflops": None,
                      "peak_key": None},
            "sections": {
                name: {"title": title, "status": "pending",
                       "reason": "not reached: the run stopped before this section", "results": [], "notes": []}
                for name, title in SECTIONS.items()
            },
            "summary": [],
        }

    # ---------------------------------------------------------------- time
    @staticmethod
    def elapsed() -> float:
        return time.perf_counter() - T0

    def left(self) -> float:
        return self.time_limit - self.elapsed()

    def limit_reason(self) -> str:
        return f"time limit of {self.time_limit:g} s reached ({self.elapsed():.1f} s elapsed)"

    # ---------------------------------------------------------------- sections
    def section(self, name: str) -> dict:
        return self.data["sections"][name]

    def set_status(self, name: str, status: str, reason: str | None = None) -> None:
        section = self.section(name)
        section["status"], section["reason"] = status, reason
        self.save()

    def add(self, name: str, result: dict) -> dict:
        self.section(name)["results"].append(result)
        self.save()
        return result

    def note(self, name: str, text: str) -> None:
        self.section(name)["notes"].append(text)

    # ---------------------------------------------------------------- files
    def save(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 2)
        self.data["summary"] = summary_lines(self.data)
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in ((JSON_NAME, json.dumps(self.data, indent=2, default=_json_default)),
                           (MD_NAME, render_markdown(self.data))):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.out / name)  # atomic: a reader (or a kill) never sees half a file


def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


# ============================================================================ device helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak(device: torch.device) -> int | None:
    """Reset the peak-memory counter; returns the bytes allocated now (None on a CPU)."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def peak_bytes(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    sync(device)
    return int(torch.cuda.max_memory_allocated(device))


def is_oom(exc: BaseException) -> bool:
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t)
    return isinstance(exc, oom_types) or "out of memory" in str(exc).lower()


def time_calls(fn: Callable[[], object], device: torch.device, *, warmup: int, repeats: int) -> dict:
    """Seconds per call of `fn`: the first call (compile, allocator warm-up) apart, `warmup` more untimed
    calls, then `repeats` timed ones — CUDA events on a GPU, perf_counter on a CPU; plus wall time."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
        fn()
    sync(device)
    samples, walls = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            wall = time.perf_counter()
            begin.record()
            fn()
            end.record()
            end.synchronize()
            walls.append(time.perf_counter() - wall)
            samples.append(begin.elapsed_time(end) / 1e3)
        else:
            wall = time.perf_counter()
            fn()
            walls.append(time.perf_counter() - wall)
            samples.append(walls[-1])
    return {"first_call_s": first, "median_s": statistics.median(samples), "min_s": min(samples),
            "max_s": max(samples), "samples_s": samples, "wall_median_s": statistics.median(walls),
            "timer": "cuda events" if device.type == "cuda" else "perf_counter"}


# ============================================================================ models and runners
class Models:
    """Random-weight frozen T5s of the real shapes, built on the device, one of each kept for reuse."""

    def __init__(self, device: torch.device):
        from transformers import ByT5Tokenizer

        self.device = device
        self.tokenizer = ByT5Tokenizer()  # byte-level: needs no files (ids < 384 fit every vocabulary here)
        self._cache: dict[str, torch.nn.Module] = {}
        self.build_s: dict[str, float] = {}

    def build(self, key: str) -> torch.nn.Module:
        """A fresh frozen model in eval mode on the device."""
        from bmtpt_cli.runner.model import load_frozen_t5

        start = time.perf_counter()
        if key == "tiny":
            model, _ = load_frozen_t5("tiny", device=self.device)
        else:
            from transformers import T5Config, T5ForConditionalGeneration

            config = T5Config(**T5_COMMON_KW, **MODEL_SHAPES[key])
            torch.manual_seed(0)
            try:
                with torch.device(self.device):  # initialise on the device: seconds, not a minute on the host
                    model = T5ForConditionalGeneration(config)
            except Exception:  # noqa: BLE001 — any trouble with device-side init: build on the host and move
                model = T5ForConditionalGeneration(config).to(self.device)
            model.requires_grad_(False)
            model.eval()
        sync(self.device)
        self.build_s[key] = round(time.perf_counter() - start, 2)
        return model

    def get(self, key: str) -> torch.nn.Module:
        """The cached model of this shape; any other cached model is dropped first, so that a measurement's
        peak memory holds only its own model's weights."""
        if key not in self._cache:
            self.drop()
            self._cache[key] = self.build(key)
        return self._cache[key]

    def drop(self, key: str | None = None) -> None:
        for name in [key] if key else list(self._cache):
            self._cache.pop(name, None)
        free_memory(self.device)

    def runner(self, model, precision: str):
        """The shipped runner over `model` in `precision` (fp32 | bf16 | auto), as `load_runner` builds it."""
        from bmtpt_cli.runner.model import autocast_dtype
        from bmtpt_cli.runner.runner import FrozenT5Runner

        return FrozenT5Runner(model, self.tokenizer, max_source_length=256, max_target_length=128,
                              autocast_dtype=autocast_dtype(precision, self.device))


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ============================================================================ one source-step measurement
def measure_source_step(ctx: "Context", *, model_key: str, precision: str, particles: int, examples_per_task: int,
                        variant: str = "plain", model=None, warmup: int | None = None, repeats: int | None = None) -> dict:
    """One shipped `source_update` at this shape, timed; an out-of-memory is a result (`oom: true`), not a failure."""
    plan, device = ctx.plan, ctx.device
    batch = plan.tasks * examples_per_task
    shape = workloads.StepShape(model_key, plan.prompt_length, particles, batch, plan.source_len, plan.target_len)
    model = model if model is not None else ctx.models.get(model_key)
    runner = ctx.models.runner(model, precision)
    result = {
        "label": f"{model_key} {precision} {variant} M={particles} B={batch}", "model": model_key,
        "precision": precision, "autocast_dtype": str(runner.autocast_dtype) if runner.autocast_dtype else None,
        "variant": variant, "particles": particles, "tasks": plan.tasks, "examples_per_task": examples_per_task,
        "batch": batch, "sequences": particles * batch, "prompt_length": plan.prompt_length,
        "source_len": plan.source_len, "target_len": plan.target_len, "encoder_len": plan.prompt_length + plan.source_len,
        "oom": False,
    }
    free_memory(device)
    step = None
    failure: BaseException | None = None
    try:
        step = workloads.SourceStep.for_shape(runner, shape, steps=100_000)
        baseline = reset_peak(device)
        timing = time_calls(step, device, warmup=plan.warmup if warmup is None else warmup,
                            repeats=plan.repeats if repeats is None else repeats)
        result.update(step_s=timing["median_s"], step_min_s=timing["min_s"], step_max_s=timing["max_s"],
                      samples_s=timing["samples_s"], first_step_s=timing["first_call_s"],
                      wall_step_s=timing["wall_median_s"], timer=timing["timer"], loss=step.last.loss,
                      baseline_memory_bytes=baseline, peak_memory_bytes=peak_bytes(device))
    except Terminated:
        raise
    except Exception as exc:  # noqa: BLE001 — recorded, the suite goes on
        reraise_if_signalled(exc)
        failure = exc
    if failure is not None:
        result["oom"] = is_oom(failure)
        result["error"] = _first_line(failure)
        if not result["oom"]:
            result["traceback"] = _traceback_tail(failure)
        failure = None
        if result["oom"]:
            result["peak_memory_before_oom_bytes"] = peak_bytes(device)  # what was allocated when it gave up
    del step
    free_memory(device)
    return _with_rates(result, model.config, ctx.peak_tflops)


def _with_rates(result: dict, config, peak_tflops: float | None) -> dict:
    """Throughput, memory in GiB, model FLOPs and MFU of a step result (FLOP_FORMULA)."""
    sequences, enc, dec = result["sequences"], result["encoder_len"], result["target_len"]
    flops = t5_flops(config, sequences, enc, dec)
    result["model_flops_per_step"] = flops["total"]
    result["attention_flops_share"] = 3 * flops["attention_forward"] / flops["total"]
    step_s = result.get("step_s")
    if step_s:
        tokens = sequences * (enc + dec)
        result["tokens_per_step"] = tokens
        result["tokens_per_s"] = tokens / step_s
        result["sequences_per_s"] = sequences / step_s
        result["time_per_sequence_s"] = step_s / sequences
        result["achieved_tflops"] = flops["total"] / step_s / 1e12
        result["mfu"] = result["achieved_tflops"] / peak_tflops if peak_tflops else None
    peak = result.get("peak_memory_bytes")
    result["peak_memory_gib"] = peak / 2**30 if peak is not None else None
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:500] if text else ''}"


def _traceback_tail(exc: BaseException, lines: int = 12) -> str:
    return "\n".join("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).splitlines()[-lines:])


# ============================================================================ the sections
@dataclass
class Context:
    args: argparse.Namespace
    plan: Plan
    device: torch.device
    models: Models
    report: Report
    peak_tflops: float | None
    main_precision: str

    def allows(self, section: str, what: str, estimate_s: float = 0.0) -> bool:
        """Whether a measurement may start: time is left (with room for `estimate_s`); else it is recorded
        as skipped and the section marked partial."""
        if SIGNALLED:
            raise Terminated(f"signal {SIGNALLED[0]}")
        left = self.report.left()
        if left > estimate_s and left > 0:
            return True
        reason = (self.report.limit_reason() if left <= 0 else
                  f"would overrun the time limit of {self.report.time_limit:g} s ({left:.0f} s left, estimated {estimate_s:.0f} s)")
        self.report.add(section, {"label": what, "skipped": reason})
        self.report.section(section)["partial"] = True
        return False


CPU_BF16_REASON = ("bf16 autocast on a CPU without bf16 matrix units is far slower than fp32 (9 s against 0.14 s a "
                   "step for t5-small-2l on the 2-core development machine): on a CPU only the tiny model runs in bf16")


def section_source_step(ctx: Context, name: str) -> None:
    for model_key in ctx.plan.models:
        for precision in ctx.plan.precisions:
            if ctx.device.type == "cpu" and precision == "bf16" and model_key != "tiny":
                ctx.report.add(name, {"label": f"{model_key} {precision}", "model": model_key, "precision": precision,
                                      "skipped": CPU_BF16_REASON})
                continue
            if not ctx.allows(name, f"{model_key} {precision}"):
                return
            ctx.report.add(name, measure_source_step(ctx, model_key=model_key, precision=precision,
                                                      particles=ctx.plan.particles, examples_per_task=1))
        if model_key != ctx.plan.main:
            ctx.models.drop(model_key)  # keep the device's memory for the sections that probe it


def _plain(ctx: Context, model_key: str, precision: str) -> dict | None:
    """The source_step section's plain measurement of this model and precision (the baseline)."""
    for result in ctx.report.section("source_step")["results"]:
        if result.get("model") == model_key and result.get("precision") == precision and result.get("step_s"):
            return result
    return None


def _compare(result: dict, base: dict | None) -> dict:
    if base and result.get("step_s"):
        result["time_vs_plain"] = result["step_s"] / base["step_s"]
        if result.get("peak_memory_bytes") and base.get("peak_memory_bytes"):
            result["peak_memory_vs_plain"] = result["peak_memory_bytes"] / base["peak_memory_bytes"]
            if result.get("baseline_memory_bytes") is not None and base.get("baseline_memory_bytes") is not None:
                act, base_act = (result["peak_memory_bytes"] - result["baseline_memory_bytes"],
                                 base["peak_memory_bytes"] - base["baseline_memory_bytes"])
                result["activation_memory_vs_plain"] = act / base_act if base_act > 0 else None
    return result


def section_grad_checkpointing(ctx: Context, name: str) -> None:
    from bmtpt_cli.runner.model import enable_gradient_checkpointing

    for model_key in ctx.plan.models:
        if not ctx.allows(name, f"{model_key} {ctx.main_precision} grad-checkpointing"):
            return
        ctx.models.drop()
        model = ctx.models.build(model_key)
        try:
            enable_gradient_checkpointing(model)
        except Exception as exc:  # noqa: BLE001 — e.g. a transformers without checkpointing layers
            reraise_if_signalled(exc)
            ctx.report.add(name, {"label": model_key, "model": model_key, "error": _first_line(exc)})
            continue
        result = measure_source_step(ctx, model_key=model_key, precision=ctx.main_precision, variant="grad_checkpointing",
                                     particles=ctx.plan.particles, examples_per_task=1, model=model)
        ctx.report.add(name, _compare(result, _plain(ctx, model_key, ctx.main_precision)))
        del model
        free_memory(ctx.device)


def section_compile(ctx: Context, name: str) -> None:
    from bmtpt_cli.runner.model import compile_model

    model_key = ctx.plan.main
    if not ctx.allows(name, f"{model_key} {ctx.main_precision} compile"):
        return
    ctx.models.drop()
    model = ctx.models.build(model_key)
    result: dict
    try:
        compile_model(model)  # model.forward = torch.compile(model.forward, dynamic=True)
    except Exception as exc:  # noqa: BLE001
        reraise_if_signalled(exc)
        ctx.report.add(name, {"label": model_key, "model": model_key, "error": _first_line(exc),
                              "traceback": _traceback_tail(exc)})
        return
    ctx.report.note(name, "first_step_s includes torch.compile's compilation (dynamic=True) of forward and backward")
    result = measure_source_step(ctx, model_key=model_key, precision=ctx.main_precision, variant="compile",
                                 particles=ctx.plan.particles, examples_per_task=1, model=model)
    ctx.report.add(name, _compare(result, _plain(ctx, model_key, ctx.main_precision)))
    del model
    try:
        torch._dynamo.reset()
    except Exception:  # noqa: BLE001
        pass
    free_memory(ctx.device)


def _sweep(ctx: Context, name: str, points: list[tuple[int, int]]) -> None:
    for particles, examples in points:
        if not ctx.allows(name, f"M={particles} e={examples}"):
            return
        ctx.report.add(name, measure_source_step(ctx, model_key=ctx.plan.main, precision=ctx.main_precision,
                                                 particles=particles, examples_per_task=examples))


def section_scaling_particles(ctx: Context, name: str) -> None:
    _sweep(ctx, name, [(m, 1) for m in ctx.plan.sweep_particles])


def section_scaling_examples(ctx: Context, name: str) -> None:
    _sweep(ctx, name, [(ctx.plan.particles, e) for e in ctx.plan.sweep_examples])


def section_max_fit(ctx: Context, name: str) -> None:
    """Double the examples per task (M fixed) beyond the sweeps until a step runs out of memory; then the
    first size that did not fit with gradient checkpointing; then the time-per-sequence analysis."""
    plan = ctx.plan
    measured = [r for s in ("scaling_particles", "scaling_examples") for r in ctx.report.section(s)["results"]
                if r.get("step_s") or r.get("oom")]
    first_oom = next((r for r in measured if r.get("oom")), None)
    last_time = max((r for r in measured if r.get("step_s")), key=lambda r: r["sequences"], default=None)
    for examples in plan.fit_examples:
        if first_oom:
            break
        sequences = plan.particles * plan.tasks * examples
        if sequences > plan.fit_max_sequences:
            ctx.report.note(name, f"stopped at M·B ≤ {plan.fit_max_sequences} (the probe's cap) without running out of memory")
            break
        estimate = 0.0
        if last_time:
            estimate = last_time["step_s"] * sequences / last_time["sequences"] * (1 + plan.fit_repeats) + 2
        if not ctx.allows(name, f"M={plan.particles} e={examples}", estimate):
            break
        result = measure_source_step(ctx, model_key=plan.main, precision=ctx.main_precision, particles=plan.particles,
                                     examples_per_task=examples, warmup=1, repeats=plan.fit_repeats)
        ctx.report.add(name, result)
        if result.get("oom"):
            first_oom = result
        elif result.get("step_s"):
            last_time = result
    if first_oom and ctx.allows(name, "grad-checkpointing at the first size that did not fit"):
        from bmtpt_cli.runner.model import enable_gradient_checkpointing

        ctx.models.drop()
        model = ctx.models.build(plan.main)
        try:
            enable_gradient_checkpointing(model)
            result = measure_source_step(ctx, model_key=plan.main, precision=ctx.main_precision,
                                         variant="grad_checkpointing", particles=first_oom["particles"],
                                         examples_per_task=first_oom["examples_per_task"], model=model, warmup=1,
                                         repeats=plan.fit_repeats)
        except Exception as exc:  # noqa: BLE001
            reraise_if_signalled(exc)
            result = {"label": "grad-checkpointing at the first size that did not fit", "error": _first_line(exc)}
        ctx.report.add(name, result)
        del model
        ctx.models.drop()
    ctx.report.section(name)["analysis"] = launch_bound_analysis(ctx.report.data)


def launch_bound_analysis(data: dict) -> dict:
    """Time per sequence against M·B over every plain step of the main model and precision: the step is
    launch-bound while its time hardly grows with M·B; it saturates where time per sequence reaches
    (within 20 % of) its best."""
    points = {}
    for section in ("scaling_particles", "scaling_examples", "max_fit"):
        for r in data["sections"][section]["results"]:
            if r.get("step_s") and r.get("variant") == "plain":
                points.setdefault(r["sequences"], r)  # first measurement of each M·B
    rows = [{"sequences": s, "particles": r["particles"], "examples_per_task": r["examples_per_task"],
             "step_s": r["step_s"], "time_per_sequence_s": r["time_per_sequence_s"],
             "peak_memory_gib": r.get("peak_memory_gib"), "mfu": r.get("mfu")} for s, r in sorted(points.items())]
    fits = [r for section in ("scaling_particles", "scaling_examples", "max_fit")
            for r in data["sections"][section]["results"] if r.get("step_s") and r.get("variant") == "plain"]
    ooms = [r for section in ("scaling_particles", "scaling_examples", "max_fit")
            for r in data["sections"][section]["results"] if r.get("oom")]
    analysis = {"points": rows, "largest_fit_sequences": max((r["sequences"] for r in fits), default=None),
                "smallest_oom_sequences": min((r["sequences"] for r in ooms), default=None),
                "saturation_sequences": None, "launch_bound_below_sequences": None}
    if rows:
        best = min(r["time_per_sequence_s"] for r in rows)
        analysis["best_time_per_sequence_s"] = best
        analysis["saturation_sequences"] = next(r["sequences"] for r in rows if r["time_per_sequence_s"] <= 1.2 * best)
        smallest = rows[0]
        flat = [r for r in rows if r["step_s"] <= 1.5 * smallest["step_s"]]  # the step time hardly grew
        analysis["launch_bound_below_sequences"] = max(r["sequences"] for r in flat) if len(flat) > 1 else None
    return analysis


def section_svgd_share(ctx: Context, name: str) -> None:
    """`SourceStep.profile` (the harness' `profile_ranges`: CPU wall time per `bmtpt.*` range); on CUDA also
    the GPU kernel time inside each range, which is where a GPU step's time is (CPU ranges there mostly
    time kernel launches, until the step's `.item()` waits)."""
    plan = ctx.plan
    if not ctx.allows(name, "profile"):
        return
    runner = ctx.models.runner(ctx.models.get(plan.main), ctx.main_precision)
    shape = workloads.StepShape(plan.main, plan.prompt_length, plan.particles, plan.tasks, plan.source_len, plan.target_len)
    step = workloads.SourceStep.for_shape(runner, shape, steps=100_000)
    for _ in range(max(plan.warmup, 1)):
        step()
    sync(ctx.device)
    parts = step.profile(plan.profile_steps)
    result = {"label": f"{plan.main} {ctx.main_precision} M={plan.particles} B={plan.tasks}", "model": plan.main,
              "precision": ctx.main_precision, "particles": plan.particles, "batch": plan.tasks,
              "steps_profiled": plan.profile_steps, "cpu_range_s": parts,
              "svgd_share_cpu": parts["svgd"] / parts["total"] if parts.get("total") else None}
    if ctx.device.type == "cuda":
        ctx.report.note(name, "on CUDA the CPU ranges time mostly kernel launches (the step waits for the GPU in its "
                              "record's .item(), counted in 'rest'); the GPU kernel times are the share to read")
        try:
            device_parts = _cuda_range_times(step, plan.profile_steps, ctx.device)
            result["gpu_range_s"] = device_parts
            total = device_parts.get("total")
            result["svgd_share_gpu"] = device_parts["svgd"] / total if total else None
            timing = time_calls(step, ctx.device, warmup=1, repeats=max(plan.repeats // 2, 2))
            result["step_s"] = timing["median_s"]
            result["gpu_busy_fraction"] = total / timing["median_s"] if total else None  # < 1: launch/host-bound
        except Exception as exc:  # noqa: BLE001 — e.g. no CUPTI: keep the CPU ranges
            reraise_if_signalled(exc)
            result["gpu_profile_error"] = _first_line(exc)
    gpu_share = result.get("svgd_share_gpu")
    result["svgd_share"] = gpu_share if gpu_share is not None else result["svgd_share_cpu"]
    ctx.report.add(name, result)
    del step
    free_memory(ctx.device)


def _cuda_range_times(step, steps: int, device: torch.device) -> dict[str, float]:
    """GPU kernel seconds per step inside each `bmtpt.*` range (and the whole call), from a CPU+CUDA profile.

    A kernel is attributed to the range during which the op that launched it STARTED, whichever thread
    ran that op: on CUDA the backward runs on autograd's device thread, so its ops are not children of
    the main thread's `bmtpt.backward` range, but they run while that range is open (the ranges are
    sequential phases of one step on the main thread)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            with record_function("bench.source_update"):
                step()
        sync(device)
    ranges, ops = [], []
    for event in prof.events():
        if event.device_type != DeviceType.CPU:
            continue
        if event.name.startswith(("bench.", "bmtpt.")):
            ranges.append((event.name, event.time_range.start, event.time_range.end))
        else:
            micros = getattr(event, "self_device_time_total", None)
            if micros is None:  # an older torch
                micros = getattr(event, "self_cuda_time_total", 0.0)
            if micros:
                ops.append((event.time_range.start, micros))
    totals = attribute_to_ranges(ranges, ops)
    parts = {c: totals.get(f"bmtpt.{c}", 0.0) / 1e6 / steps for c in workloads.COMPONENTS}
    parts["total"] = totals.get("bench.source_update", 0.0) / 1e6 / steps
    parts["rest"] = parts["total"] - sum(parts[c] for c in workloads.COMPONENTS)
    return parts


def attribute_to_ranges(ranges: list[tuple[str, float, float]], ops: list[tuple[float, float]]) -> dict[str, float]:
    """Sum each op's (start time, amount) into every named range [start, end) that contains its start
    (nested ranges each get it): {range name: total}."""
    totals: dict[str, float] = {}
    for name, begin, end in ranges:
        totals[name] = totals.get(name, 0.0) + sum(amount for at, amount in ops if begin <= at < end)
    return totals


def section_adaptation(ctx: Context, name: str) -> None:
    """`adapt()` for a few steps (no dev evaluation) on a batch of `adapt_batch` examples of the source step's
    lengths; per-step time from the step callbacks (each step's `float(loss)` synchronises)."""
    from bmtpt_cli.adapter.train import AdaptConfig, adapt
    from bmtpt_cli.data.registry import get_task
    from bmtpt_cli.settings import build, defaults

    plan = ctx.plan
    if not ctx.allows(name, f"adapt batch {plan.adapt_batch}"):
        return
    model = ctx.models.get(plan.main)
    runner = ctx.models.runner(model, ctx.main_precision)
    task = get_task("demo_nli")
    train = workloads.text_examples(max(64, plan.adapt_batch), plan.source_len, plan.target_len, seed=1)
    init = workloads.sample_particles(runner, 1, plan.prompt_length)[0]  # (l, d) on the CPU; adapt moves it
    config = build(AdaptConfig, defaults("adapt"), steps=plan.adapt_steps, batch_size=plan.adapt_batch,
                   eval_every=None, warmup_steps=0, seed=0)
    stamps: list[float] = []
    free_memory(ctx.device)
    baseline = reset_peak(ctx.device)

    def stamp(_=None) -> None:
        sync(ctx.device)
        stamps.append(time.perf_counter())

    result = {"label": f"{plan.main} {ctx.main_precision} batch {plan.adapt_batch}", "model": plan.main,
              "precision": ctx.main_precision, "batch": plan.adapt_batch, "sequences": plan.adapt_batch,
              "prompt_length": plan.prompt_length, "source_len": plan.source_len, "target_len": plan.target_len,
              "encoder_len": plan.prompt_length + plan.source_len, "steps": plan.adapt_steps,
              "warmup_steps_excluded": plan.adapt_warmup, "prior": True, "oom": False}  # prior_mean=init below
    try:
        adapt(runner, [task], {task.name: train}, {}, init, config, prior_mean=init, on_start=stamp, on_step=stamp)
        durations = [b - a for a, b in zip(stamps, stamps[1:])][plan.adapt_warmup:]
        result.update(step_s=statistics.median(durations), step_min_s=min(durations), samples_s=durations,
                      first_step_s=stamps[1] - stamps[0], timer="perf_counter after synchronize",
                      baseline_memory_bytes=baseline, peak_memory_bytes=peak_bytes(ctx.device))
    except Terminated:
        raise
    except Exception as exc:  # noqa: BLE001
        reraise_if_signalled(exc)
        result.update(oom=is_oom(exc), error=_first_line(exc), traceback=_traceback_tail(exc))
    free_memory(ctx.device)
    ctx.report.add(name, _with_rates(result, model.config, ctx.peak_tflops))


def section_evaluation(ctx: Context, name: str) -> None:
    """`predict(decode="rank")` vs `predict(decode="generate")` on demo_nli's test inputs (3 label words),
    repeated to `eval_examples`, one prompt of l vectors; examples per second."""
    from bmtpt_cli.data.registry import get_task
    from bmtpt_cli.scoring.score import predict

    plan = ctx.plan
    model = ctx.models.get(plan.main)
    runner = ctx.models.runner(model, ctx.main_precision)
    task = get_task("demo_nli")
    labels = task.verbalisers("words")
    pool = task.examples("test")
    examples = [pool[i % len(pool)] for i in range(plan.eval_examples)]
    prompt = workloads.sample_particles(runner, 1, plan.prompt_length)[0].to(ctx.device)  # (l, d)
    source_tokens = [len(runner.tokenizer(e.source).input_ids) for e in examples]
    ctx.report.note(name, f"{len(examples)} demo_nli test inputs ({statistics.mean(source_tokens):.0f} byte tokens on "
                          f"average, at most {max(source_tokens)}), labels {', '.join(labels)} "
                          f"({', '.join(str(len(runner.tokenizer(w).input_ids)) for w in labels)} tokens with </s>: "
                          "byte tokens, so generation decodes more steps than with T5's SentencePiece)")
    variants = [("rank", None)] + [("generate", b) for b in plan.eval_generate_batches]
    rank_predictions = None
    for decode, batch_size in variants:
        label = decode if batch_size is None else f"{decode} batch {batch_size}"
        if not ctx.allows(name, label):
            return
        result = {"label": label, "model": plan.main, "precision": ctx.main_precision, "decode": decode,
                  "batch_size": batch_size, "examples": len(examples), "oom": False}
        out: dict = {}

        def run():
            kwargs = {"batch_size": batch_size} if batch_size else {}
            out["predictions"] = predict(runner, prompt, examples, candidates=labels, decode=decode, **kwargs)

        free_memory(ctx.device)
        try:
            with torch.no_grad():
                baseline = reset_peak(ctx.device)
                timing = time_calls(run, ctx.device, warmup=1, repeats=plan.eval_repeats)
            predictions = out["predictions"]
            result.update(time_s=timing["median_s"], samples_s=timing["samples_s"], timer=timing["timer"],
                          examples_per_s=len(examples) / timing["median_s"], baseline_memory_bytes=baseline,
                          peak_memory_bytes=peak_bytes(ctx.device),
                          valid_label_fraction=sum(p in labels for p in predictions) / len(predictions))
            if decode == "rank":
                rank_predictions = predictions
            elif rank_predictions is not None:
                result["agreement_with_rank"] = sum(a == b for a, b in zip(predictions, rank_predictions)) / len(predictions)
        except Terminated:
            raise
        except Exception as exc:  # noqa: BLE001
            reraise_if_signalled(exc)
            result.update(oom=is_oom(exc), error=_first_line(exc), traceback=_traceback_tail(exc))
        peak = result.get("peak_memory_bytes")
        result["peak_memory_gib"] = peak / 2**30 if peak is not None else None
        ctx.report.add(name, result)
    rank = next((r for r in ctx.report.section(name)["results"] if r.get("decode") == "rank" and r.get("time_s")), None)
    for r in ctx.report.section(name)["results"]:
        if r.get("decode") == "generate" and r.get("time_s") and rank:
            r["time_vs_rank"] = r["time_s"] / rank["time_s"]
    ctx.report.save()


def section_peer(ctx: Context, name: str) -> None:
    """The shipped source step (its automatic chunk plan, then --chunk-sequences B: one particle a pass) against
    `bench_peer.PeftLoop` — M separate PEFT prompt-tuning models, each forward + backward + AdamW on the same B
    examples, in the runner's autocast — on the main model and precision; time and peak memory of each."""
    from bench_peer import PeftLoop

    plan = ctx.plan
    model = ctx.models.get(plan.main)
    runner = ctx.models.runner(model, ctx.main_precision)
    batch = plan.tasks
    shape = workloads.StepShape(plan.main, plan.prompt_length, plan.particles, batch, plan.source_len, plan.target_len)
    variants = [("bmtpt step, automatic plan", None), (f"bmtpt step, --chunk-sequences {batch}", batch),
                (f"PEFT loop of {plan.particles} models", "peer")]
    for label, variant in variants:
        if not ctx.allows(name, label):
            return
        result = {"label": label, "model": plan.main, "precision": ctx.main_precision, "particles": plan.particles,
                  "batch": batch, "sequences": plan.particles * batch, "oom": False}
        free_memory(ctx.device)
        step = fn = None
        try:
            runner.chunk_sequences = variant if isinstance(variant, int) else None
            step = workloads.SourceStep.for_shape(runner, shape, steps=100_000)
            fn = PeftLoop(step, autocast=runner.autocast_dtype) if variant == "peer" else step
            baseline = reset_peak(ctx.device)
            timing = time_calls(fn, ctx.device, warmup=plan.warmup, repeats=plan.repeats)
            result.update(step_s=timing["median_s"], samples_s=timing["samples_s"], timer=timing["timer"],
                          baseline_memory_bytes=baseline, peak_memory_bytes=peak_bytes(ctx.device))
            if variant != "peer":
                result["plan"] = str(runner.pass_plan(plan.particles, step.batch, plan.prompt_length))
        except Terminated:
            raise
        except Exception as exc:  # noqa: BLE001 — recorded, the suite goes on
            reraise_if_signalled(exc)
            result.update(oom=is_oom(exc), error=_first_line(exc), traceback=_traceback_tail(exc))
        finally:
            runner.chunk_sequences = None
        peak = result.get("peak_memory_bytes")
        result["peak_memory_gib"] = peak / 2**30 if peak is not None else None
        del step, fn
        free_memory(ctx.device)
        ctx.report.add(name, result)
    results = ctx.report.section(name)["results"]
    peer = next((r for r in results if str(r.get("label", "")).startswith("PEFT") and r.get("step_s")), None)
    for r in results:
        if peer and r is not peer and r.get("step_s"):
            r["time_vs_peer"] = r["step_s"] / peer["step_s"]
    ctx.report.save()


SECTION_FUNCTIONS: dict[str, Callable[[Context, str], None]] = {
    "source_step": section_source_step,
    "grad_checkpointing": section_grad_checkpointing,
    "svgd_share": section_svgd_share,
    "scaling_particles": section_scaling_particles,
    "scaling_examples": section_scaling_examples,
    "max_fit": section_max_fit,
    "adaptation": section_adaptation,
    "evaluation": section_evaluation,
    "peer": section_peer,
    "compile": section_compile,
}
assert list(SECTION_FUNCTIONS) == list(SECTIONS)


# ============================================================================ summary and markdown
def _fmt_s(value) -> str:
    return harness.fmt_time(value) if isinstance(value, (int, float)) else "—"


def _fmt_gib(value) -> str:
    return f"{value:.2f} GiB" if isinstance(value, (int, float)) else "—"


def _fmt_pct(value) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else "—"


def _fmt_x(value) -> str:
    return f"{value:.2f}×" if isinstance(value, (int, float)) else "—"


def _fmt_n(value, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, (int, float)) else "—"


def _fmt_g(value) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "—"


def _outcome(r: dict) -> str:
    if r.get("skipped"):
        return f"skipped: {r['skipped']}"
    if r.get("oom"):
        return "out of memory"
    if r.get("error"):
        return f"error: {r['error']}"
    return ""


def _peak_mfu(r: dict) -> str:
    text = f", peak {_fmt_gib(r['peak_memory_gib'])}" if r.get("peak_memory_gib") is not None else ""
    return text + (f", MFU {_fmt_pct(r['mfu'])}" if r.get("mfu") is not None else "")


def summary_lines(data: dict) -> list[str]:
    sections = data["sections"]
    env = data.get("environment") or {}
    lines = [f"device {data['device']}" + (f" ({env['gpu_name']})" if env.get("gpu_name") else "")
             + f"; torch {env.get('torch', '?')}, transformers {env.get('transformers', '?')}"
             + (f"; bf16 peak {data['flops']['peak_tflops']:g} TFLOPS" if data["flops"]["peak_tflops"] else "; no bf16 peak (MFU null)")
             + f"; {data.get('elapsed_s') or 0:.0f} s of {data['time_limit_s']:g} s"
             + ("" if data["finished"] else " (cut short)")]
    for r in sections["source_step"]["results"]:
        if r.get("step_s"):
            lines.append(f"source step {r['model']} {r['precision']} M={r['particles']} B={r['batch']}: "
                         f"{_fmt_s(r['step_s'])}, {_fmt_n(r['tokens_per_s'])} tokens/s{_peak_mfu(r)}")
        elif _outcome(r):
            lines.append(f"source step {r.get('label')}: {_outcome(r)}")
    for key, what in (("grad_checkpointing", "grad checkpointing"), ("compile", "compile")):
        for r in sections[key]["results"]:
            if r.get("step_s"):
                extra = f", first step {_fmt_s(r.get('first_step_s'))}" if key == "compile" else ""
                memory = (f", {_fmt_x(r['peak_memory_vs_plain'])} plain peak memory" if r.get("peak_memory_vs_plain") else "")
                lines.append(f"{what} {r['model']}: {_fmt_s(r['step_s'])} ({_fmt_x(r.get('time_vs_plain'))} plain time"
                             f"{memory}{extra})")
            elif _outcome(r):
                lines.append(f"{what} {r.get('label')}: {_outcome(r)}")
    for r in sections["svgd_share"]["results"]:
        if r.get("svgd_share") is not None:
            lines.append(f"SVGD update share of the step: {_fmt_pct(r['svgd_share'])}"
                         + (f" (GPU busy {_fmt_pct(r.get('gpu_busy_fraction'))} of the step)" if r.get("gpu_busy_fraction") else ""))
    analysis = sections["max_fit"].get("analysis")
    if analysis and analysis.get("points"):
        lines.append(f"largest M·B that fit: {analysis['largest_fit_sequences']}"
                     + (f" (first out of memory at {analysis['smallest_oom_sequences']})" if analysis.get("smallest_oom_sequences") else "")
                     + f"; time per sequence within 20 % of its best from M·B = {analysis['saturation_sequences']}")
    for r in sections["max_fit"]["results"]:
        if r.get("variant") == "grad_checkpointing":
            lines.append(f"with grad checkpointing, M·B = {r['sequences']}: "
                         + (f"fits, {_fmt_s(r['step_s'])} a step{_peak_mfu(r)}" if r.get("step_s") else _outcome(r)))
    for r in sections["adaptation"]["results"]:
        if r.get("step_s"):
            lines.append(f"adaptation step batch {r['batch']}: {_fmt_s(r['step_s'])}{_peak_mfu(r)}")
    evals = [r for r in sections["evaluation"]["results"] if r.get("examples_per_s")]
    if evals:
        lines.append("evaluation: " + ", ".join(f"{r['label']} {_fmt_n(r['examples_per_s'], 1)} examples/s" for r in evals))
    not_done = [f"{k} ({v['status']})" for k, v in sections.items() if v["status"] not in ("done",)]
    if not_done:
        lines.append("not done: " + ", ".join(not_done))
    return lines


def _table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    table = harness.Table(title, columns)
    for row in rows:
        table.add(*row)
    return table.markdown()


def _step_rows(results: list[dict], *, compare: bool = False) -> tuple[list[str], list[list[str]]]:
    columns = ["what", "M", "B", "M·B", "step (median)", "first step", "tokens/s", "s per sequence", "peak memory",
               "TFLOPS", "MFU"]
    if compare:
        columns += ["time ÷ plain", "peak ÷ plain"]
    rows = []
    for r in results:
        if r.get("skipped") or (r.get("error") and not r.get("particles")):
            rows.append([r.get("label", "?"), *["—"] * (len(columns) - 2), _outcome(r)])
            continue
        row = [f"{r['model']} {r['precision']} {r['variant']}", str(r["particles"]), str(r["batch"]), str(r["sequences"])]
        if r.get("step_s"):
            row += [_fmt_s(r["step_s"]), _fmt_s(r.get("first_step_s")), _fmt_n(r.get("tokens_per_s")),
                    _fmt_s(r.get("time_per_sequence_s")), _fmt_gib(r.get("peak_memory_gib")),
                    _fmt_g(r.get("achieved_tflops")), _fmt_pct(r.get("mfu"))]
            if compare:
                row += [_fmt_x(r.get("time_vs_plain")), _fmt_x(r.get("peak_memory_vs_plain"))]
        else:
            row += [_outcome(r)] + ["—"] * (len(columns) - 5)
        rows.append(row)
    return columns, rows


def render_markdown(data: dict) -> str:
    env = data.get("environment") or {}
    plan = data["plan"]
    parts = ["# bmtpt GPU benchmark suite", ""]
    if data["quick"]:
        parts += ["> **--quick run**: small shapes and few repeats, a smoke test of the suite; not figures to report.", ""]
    if not data["finished"]:
        parts += [f"> **Run not finished** ({data.get('elapsed_s') or 0:.0f} s so far, or cut short): sections not done say why.", ""]
    parts += ["**Command:** `" + data["command"] + "`", "",
              f"**Started:** {data['started_utc']}; time limit {data['time_limit_s']:g} s; elapsed {data.get('elapsed_s') or 0:.0f} s.", ""]
    if env:
        rows = [[k, str(env.get(k))] for k in ("device", "gpu_name", "device_count", "gpu_memory_bytes", "gpu_capability",
                                                 "bf16_supported", "driver", "cuda", "cudnn", "torch", "transformers",
                                                 "bmtpt_cli", "python", "tf32_matmul", "float32_matmul_precision") if k in env]
        cpu = env.get("cpu") or {}
        rows.append(["cpu", f"{cpu.get('cpu_model')}, {cpu.get('usable_cores')} usable cores, load {cpu.get('load_average')}"])
        parts += [_table("Environment", ["what", "value"], rows), ""]
    parts += [f"**Shapes.** Random-weight T5s of the real shapes ({', '.join(plan['models'])}; every section but the "
              f"source step uses {plan['main']}), ByT5's byte tokenizer. Source step: M = {plan['particles']} particles, "
              f"{plan['tasks']} tasks × e examples (B = {plan['tasks']}·e), prompt length l = {plan['prompt_length']}, "
              f"n = {plan['source_len']} source and t = {plan['target_len']} target tokens per example (no padding); "
              f"{plan['warmup']} warm-up steps, median of {plan['repeats']}.", "",
              f"**Model FLOPs.** {FLOP_FORMULA}", "",
              f"**Peak used:** {data['flops']['peak_tflops'] or 'none (unknown device: MFU null)'}"
              + (f" TFLOPS (table entry '{data['flops']['peak_key']}')" if data["flops"]["peak_key"] else "")
              + ". Table (dense bf16 TFLOPS): " + ", ".join(f"{k} {v:g}" for k, v in BF16_PEAK_TFLOPS.items()) + ".", ""]
    parts += ["## Summary", ""] + [f"- {line}" for line in data.get("summary") or []] + [""]
    for name, section in data["sections"].items():
        parts += [f"## {section['title']}", "", f"**Status:** {section['status']}"
                  + (f" — {section['reason']}" if section.get("reason") else "")
                  + (" (partial: some measurements skipped)" if section.get("partial") else ""), ""]
        results = section["results"]
        if results:
            parts += [_render_section(name, section), ""]
        for note in section.get("notes", []):
            parts.append(f"- {note}")
        if section.get("notes"):
            parts.append("")
    return "\n".join(parts)


def _render_section(name: str, section: dict) -> str:
    results = section["results"]
    if name in ("source_step", "scaling_particles", "scaling_examples", "max_fit", "grad_checkpointing", "compile"):
        columns, rows = _step_rows(results, compare=name in ("grad_checkpointing", "compile"))
        text = _table("Measurements", columns, rows)
        analysis = section.get("analysis")
        if name == "max_fit" and analysis and analysis.get("points"):
            arows = [[str(p["sequences"]), str(p["particles"]), str(p["examples_per_task"]), _fmt_s(p["step_s"]),
                      _fmt_s(p["time_per_sequence_s"]), _fmt_gib(p.get("peak_memory_gib")), _fmt_pct(p.get("mfu"))]
                     for p in analysis["points"]]
            text += "\n\n" + _table("Time per sequence against M·B (plain steps of every sweep)",
                                    ["M·B", "M", "e", "step", "per sequence", "peak memory", "MFU"], arows)
            text += (f"\n\nLargest M·B that fit: {analysis['largest_fit_sequences']}; first out of memory: "
                     f"{analysis['smallest_oom_sequences'] or 'none tried'}; time per sequence within 20 % of its best "
                     f"({_fmt_s(analysis.get('best_time_per_sequence_s'))}) from M·B = {analysis['saturation_sequences']}; "
                     f"step time within 1.5× of the smallest M·B's up to M·B = "
                     f"{analysis['launch_bound_below_sequences'] or '—'} (the launch-bound range).")
        return text
    if name == "svgd_share":
        blocks = []
        for r in results:
            if r.get("skipped"):
                blocks.append(f"skipped: {r['skipped']}")
                continue
            cols = ["range", "CPU wall per step"] + (["GPU kernel time per step"] if "gpu_range_s" in r else [])
            rows = []
            for key in [*workloads.COMPONENTS, "rest", "total"]:
                row = [key, _fmt_s(r["cpu_range_s"].get(key))]
                if "gpu_range_s" in r:
                    row.append(_fmt_s(r["gpu_range_s"].get(key)))
                rows.append(row)
            blocks.append(_table(f"{r['label']}: bmtpt.* ranges over {r['steps_profiled']} profiled steps", cols, rows))
            blocks.append(f"SVGD share: {_fmt_pct(r.get('svgd_share'))} (CPU ranges {_fmt_pct(r.get('svgd_share_cpu'))}"
                          + (f", GPU kernels {_fmt_pct(r.get('svgd_share_gpu'))}; GPU busy {_fmt_pct(r.get('gpu_busy_fraction'))} "
                             f"of the {_fmt_s(r.get('step_s'))} step" if "gpu_range_s" in r else "") + ")")
        return "\n\n".join(blocks)
    if name == "adaptation":
        rows = [[r.get("label", "?"), _fmt_s(r.get("step_s")), _fmt_s(r.get("first_step_s")), _fmt_n(r.get("tokens_per_s")),
                 _fmt_gib(r.get("peak_memory_gib")), _fmt_g(r.get("achieved_tflops")), _fmt_pct(r.get("mfu")), _outcome(r)]
                for r in results]
        return _table("Measurements", ["what", "step (median)", "first step", "tokens/s", "peak memory", "TFLOPS",
                                          "MFU", "note"], rows)
    if name == "evaluation":
        rows = [[r.get("label", "?"), _fmt_n(r.get("examples")), _fmt_s(r.get("time_s")), _fmt_n(r.get("examples_per_s"), 1),
                 _fmt_x(r.get("time_vs_rank")), _fmt_gib(r.get("peak_memory_gib")), _fmt_pct(r.get("valid_label_fraction")),
                 _outcome(r)] for r in results]
        return _table("Measurements", ["decode", "examples", "time", "examples/s", "time ÷ rank", "peak memory",
                                          "valid labels", "note"], rows)
    if name == "peer":
        rows = [[r.get("label", "?"), r.get("plan", "—"), _fmt_s(r.get("step_s")), _fmt_x(r.get("time_vs_peer")),
                 _fmt_gib(r.get("peak_memory_gib")), _outcome(r)] for r in results]
        return _table("Measurements", ["what", "chunk plan", "step (median)", "time ÷ PEFT loop", "peak memory", "note"],
                      rows)
    return "```json\n" + json.dumps(results, indent=2, default=_json_default) + "\n```"  # pragma: no cover


# ============================================================================ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (default: auto)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny shapes (tiny and a 2-layer t5-small), few repeats")
    parser.add_argument("--out", default=None, help=f"folder for {JSON_NAME} and {MD_NAME} (default {DEFAULT_OUT}[-quick])")
    parser.add_argument("--time-limit", type=float, default=420.0,
                        help="seconds from the start after which no measurement starts; the rest is marked skipped (default 420)")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {', '.join(SECTIONS)}")
    parser.add_argument("--only", default="", help="comma-separated sections to run (the others are skipped)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per measurement (default: 10; --quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps per measurement, first included (default: 3; --quick 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's; 1 for --quick on a CPU, which stays fast on busy cores)")
    args = parser.parse_args(argv)
    for option in ("skip", "only"):
        names = [s.strip() for s in getattr(args, option).split(",") if s.strip()]
        unknown = [s for s in names if s not in SECTIONS]
        if unknown:
            parser.error(f"--{option}: unknown section(s) {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
        setattr(args, option, names)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bmtpt_cli.runner.model import resolve_device

    device = resolve_device(args.device)
    threads = args.threads or (1 if args.quick and device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = replace(plan, repeats=args.repeats)
    if args.warmup:
        plan = replace(plan, warmup=args.warmup)
    out = Path(args.out) if args.out else Path(f"{DEFAULT_OUT}{'-quick' if args.quick else ''}")
    report = Report(out, args=args, plan=plan, device=device, time_limit=args.time_limit)

    signal.signal(signal.SIGTERM, on_signal)  # an outer `timeout`: stop, mark the section, write what there is
    report.data["environment"] = environment(device)
    peak, key = bf16_peak(report.data["environment"]["gpu_name"]) if device.type == "cuda" else (None, None)
    report.data["flops"].update(peak_tflops=peak, peak_key=key)
    report.save()
    print(f"bmtpt GPU suite on {device}: writing {out / JSON_NAME} and {out / MD_NAME}", flush=True)

    from bmtpt_cli.runner.model import autocast_dtype

    main_precision = "bf16" if autocast_dtype("auto", device) == torch.bfloat16 else "fp32"
    ctx = Context(args, plan, device, Models(device), report, peak, main_precision)
    current = None
    try:
        for name in SECTIONS:
            current = name
            if name in args.skip or (args.only and name not in args.only):
                report.set_status(name, "skipped", "not selected (--skip / --only)")
                continue
            if report.left() <= 0:
                report.set_status(name, "skipped", report.limit_reason())
                continue
            report.set_status(name, "running", "started; a run cut short here did not finish it")
            start = time.perf_counter()
            print(f"[{report.elapsed():6.1f} s] {name}: {SECTIONS[name]}", flush=True)
            try:
                SECTION_FUNCTIONS[name](ctx, name)
            except Terminated:
                raise
            except Exception as exc:  # noqa: BLE001 — one section's failure must not lose the others
                reraise_if_signalled(exc)
                report.section(name).update(error=_first_line(exc), traceback=_traceback_tail(exc, 20))
                report.set_status(name, "error", _first_line(exc))
                print(f"  {name} failed: {_first_line(exc)}", flush=True)
                free_memory(device)
                continue
            finally:
                report.section(name)["elapsed_s"] = round(time.perf_counter() - start, 2)
            section = report.section(name)
            if section.get("partial") and not any(r.get("step_s") or r.get("time_s") or r.get("svgd_share") is not None
                                                  for r in section["results"]):
                report.set_status(name, "skipped", report.limit_reason())
            else:
                report.set_status(name, "partial" if section.get("partial") else "done",
                                  "time limit reached during the section" if section.get("partial") else None)
        report.data["finished"] = True
        report.data["complete"] = all(s["status"] == "done" for s in report.data["sections"].values())
    except (Terminated, KeyboardInterrupt) as exc:
        why = f"interrupted ({exc or type(exc).__name__}) after {report.elapsed():.0f} s"
        if current:
            report.set_status(current, "killed", why)
        for name, section in report.data["sections"].items():
            if section["status"] == "pending":
                section.update(status="skipped", reason=why)
        report.save()
        print(f"\n{why}; partial results in {out}", flush=True)
        _print_summary(report)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    report.save()
    _print_summary(report)
    return 0


def _print_summary(report: Report) -> None:
    print("\nSUMMARY")
    for line in report.data["summary"]:
        print(f"  {line}")
    print(f"wrote {report.out / JSON_NAME} and {report.out / MD_NAME}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
