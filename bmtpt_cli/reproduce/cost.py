"""What a plan costs before it runs: its optimisation sequences (steps × sequences per step, per run), turned
into device-hours by a measured step time.

The step time is that of one adaptation step of `REFERENCE_BATCH` sequences (prompt + input at the scale's
length, a short target) on the scale's main model: given (`--step-seconds`) or measured by a short timing
run on the present device (`time_step`: the model's shape with random weights for the T5 sizes, so nothing
is downloaded; the cost of a pass does not depend on the weights). A run on another model size is scaled by
the ratio of the two models' non-embedding parameters (a pass's matrix products grow with them). Scoring
(dev evaluations, test sets) is not counted: at the paper's schedules it is a few percent of the training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bmtpt_cli.reproduce.plan import Plan

REFERENCE_BATCH = 32  # the paper's adaptation batch
T5_SHAPES = {  # the public configurations of the original T5 checkpoints
    "t5-small": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6, num_decoder_layers=6),
    "t5-base": dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12),
    "t5-large": dict(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24, num_decoder_layers=24),
    "t5-3b": dict(d_model=1024, d_ff=16384, d_kv=128, num_heads=32, num_layers=24, num_decoder_layers=24),
    "t5-11b": dict(d_model=1024, d_ff=65536, d_kv=128, num_heads=128, num_layers=24, num_decoder_layers=24),
}
T5_COMMON = dict(vocab_size=32128, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)


def shape_of(model: str) -> dict:
    """d_model, d_ff, d_kv, heads and layers of a model: the T5 sizes from `T5_SHAPES`, others from their
    configuration (toy, tiny, a cached hub id or a local directory)."""
    if model in T5_SHAPES:
        return T5_SHAPES[model]
    from bmtpt_cli.runner.model import model_config

    config = model_config(model)
    return dict(d_model=config.d_model, d_ff=config.d_ff, d_kv=config.d_kv, num_heads=config.num_heads,
                num_layers=config.num_layers, num_decoder_layers=config.num_decoder_layers or config.num_layers)


def matrix_parameters(shape: dict) -> int:
    """Parameters of a T5's transformer blocks (attention and feed-forward matrices; no embeddings): each
    encoder layer 4·d·h·d_kv + 2·d·d_ff, each decoder layer 8·d·h·d_kv + 2·d·d_ff."""
    d, inner, ff = shape["d_model"], shape["num_heads"] * shape["d_kv"], shape["d_ff"]
    return shape["num_layers"] * (4 * d * inner + 2 * d * ff) + shape["num_decoder_layers"] * (8 * d * inner + 2 * d * ff)


@dataclass(frozen=True)
class Estimate:
    """Seconds per run, from one step time of the main model."""

    step_seconds: float  # one step of REFERENCE_BATCH sequences on `model`
    model: str
    measured_on: str  # the device the step was timed on, or "given"
    per_run: dict[str, float]  # run name → seconds

    @property
    def total_seconds(self) -> float:
        return sum(self.per_run.values())

    def stage_seconds(self, plan: Plan) -> dict[int, tuple[float, float]]:
        """Per stage: (sum of its runs' seconds, its longest run's): one device, or one device per run."""
        stages: dict[int, list[float]] = {}
        for run in plan.runs:
            stages.setdefault(run.stage, []).append(self.per_run[run.name])
        return {stage: (sum(times), max(times)) for stage, times in sorted(stages.items())}


def estimate(plan: Plan, step_seconds: float, *, model: str, measured_on: str = "given") -> Estimate:
    """Each run's seconds: its optimisation sequences / REFERENCE_BATCH steps at `step_seconds`, scaled to
    its own model by `matrix_parameters`."""
    reference = matrix_parameters(shape_of(model))
    ratios = {m: matrix_parameters(shape_of(m)) / reference for m in {run.model for run in plan.runs}}
    per_run = {run.name: run.train_sequences / REFERENCE_BATCH * step_seconds * ratios[run.model] for run in plan.runs}
    return Estimate(step_seconds, model, measured_on, per_run)


def time_step(model: str, *, device: str = "auto", prompt_length: int, input_length: int, steps: int = 5,
              precision: str = "auto") -> tuple[float, str]:
    """Seconds per adaptation step (forward and backward of REFERENCE_BATCH prompted sequences through the
    frozen model, then AdamW on the prompt), the median of `steps` after one warm-up step; and the device."""
    import torch

    from bmtpt_cli.runner.model import autocast_dtype, load_frozen_t5, resolve_device
    from bmtpt_cli.runner.runner import IGNORE_INDEX, EncodedBatch, FrozenT5Runner

    where = resolve_device(device)
    if model in T5_SHAPES:
        from transformers import T5Config, T5ForConditionalGeneration

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            lm = T5ForConditionalGeneration(T5Config(**T5_COMMON, **T5_SHAPES[model]))
        lm.requires_grad_(False).eval().to(where)
    else:
        lm, _ = load_frozen_t5(model, device=where)
    runner = FrozenT5Runner(lm, None, autocast_dtype=autocast_dtype(precision, where))
    generator = torch.Generator().manual_seed(0)
    vocab = lm.get_input_embeddings().weight.shape[0]
    ids = torch.randint(3, vocab, (REFERENCE_BATCH, input_length), generator=generator).to(where)
    labels = torch.randint(3, vocab, (REFERENCE_BATCH, 2), generator=generator)
    labels[:, -1] = IGNORE_INDEX  # a short target: one token and padding
    batch = EncodedBatch(ids, torch.ones_like(ids), labels.to(where))
    prompt = torch.nn.Parameter(torch.randn(prompt_length, runner.d_model, generator=generator).to(where))
    optimizer = torch.optim.AdamW([prompt], lr=0.3)
    times = []
    for step in range(steps + 1):
        if where.type == "cuda":
            torch.cuda.synchronize(where)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = runner.token_losses(prompt.expand(REFERENCE_BATCH, -1, -1), batch).sum() / REFERENCE_BATCH
        loss.backward()
        optimizer.step()
        if where.type == "cuda":
            torch.cuda.synchronize(where)
        if step:  # the first step warms up (allocations, kernels)
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], _device_name(where)


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def hours(seconds: float) -> str:
    """A duration as the plan prints it: hours with three significant figures (minutes below an hour)."""
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
