"""Benchmark 10: an ATTEMPT adaptation step against a prompt-tuning step on the same batch and shape (#22).

Both run the shipped step, `adapter.train._loss_and_gradients` (encode, per-example prompts from the
prompt module, forward, backward) then AdamW: the PT step with `TargetPrompts` (θ = W ⊙ abᵀ), the
ATTEMPT step with `methods.attempt.AttemptPrompts` (6 frozen source prompts, one target prompt, the
d → 100 → d sub-network; its input pooling tokenises the batch's inputs again and looks up their
embeddings). Timed interleaved; the ratio is the median of per-round ratios. Goal: ≤ 1.15×.
Memory: the trainable and frozen elements each adds.

    .venv/bin/python benchmarks/bench_attempt_step.py [--quick] [--models tiny,t5-small]
"""

from __future__ import annotations

import time

import torch

import harness
import workloads
from harness import Machine, Table, fmt_ratio, fmt_time, measure_interleaved, paired_ratio, paired_ratio_range
from workloads import build_runner

NAME = "10_attempt_step"
GOAL = 1.15
SOURCES = 6  # the reference's single-task configuration: six source prompts


def step_functions(runner, *, length: int, batch: int, source_len: int, target_len: int):
    """The PT and ATTEMPT steps on one fixed batch of `batch` examples, as zero-argument functions."""
    from bmtpt_cli.adapter.prompt import TargetPrompts
    from bmtpt_cli.methods.attempt import AttemptPrompts, InputPooler
    from bmtpt_cli.settings import build, defaults
    from bmtpt_cli.adapter.train import AdaptConfig

    g = torch.Generator().manual_seed(0)
    width = runner.d_model
    examples = workloads.text_examples(batch, source_len, target_len, seed=1)
    pairs = [("task", e) for e in examples]
    config = build(AdaptConfig, defaults("adapt"), batch_size=batch, warmup_steps=0, eval_every=None)
    init = torch.randn(length, width, generator=g)
    modules = {
        "pt": TargetPrompts(init, ["task"]),
        "attempt": AttemptPrompts(torch.randn(SOURCES, length, width, generator=g), init, ["task"], InputPooler(runner), g),
    }

    def make(module):
        return workloads.adapt_step(runner, module, pairs, config)

    elements = {name: (sum(p.numel() for p in m.parameters() if p.requires_grad), sum(b.numel() for b in m.buffers()))
                for name, m in modules.items()}
    return {name: make(module) for name, module in modules.items()}, elements


def main() -> None:
    args = harness.adapt_step_args(__doc__.splitlines()[0], repeats=20)
    started = time.perf_counter()
    machine = Machine.detect()
    table = Table("An adaptation step, PT (W ⊙ abᵀ) and ATTEMPT (6 source prompts), the same batch",
                  ["model", "shape", "PT step", "ATTEMPT step", "ratio (median of rounds; range)", "added elements"])
    data, ratios = {}, {}
    for model in args.models.split(","):
        runner = build_runner(model, max_source_length=256, max_target_length=16)
        shape = dict(length=8 if model == "tiny" else 100, batch=args.batch, source_len=64, target_len=4)
        fns, elements = step_functions(runner, **shape)
        timings = measure_interleaved(fns, warmup=args.warmup, repeats=args.repeats)
        ratio = paired_ratio(timings["attempt"], timings["pt"])
        low, high = paired_ratio_range(timings["attempt"], timings["pt"])
        ratios[model] = ratio
        trained, frozen = elements["attempt"][0] - elements["pt"][0], elements["attempt"][1]
        table.add(model, f"l={shape['length']}, B={shape['batch']}, n={shape['source_len']}, t={shape['target_len']}",
                  fmt_time(timings["pt"].median), fmt_time(timings["attempt"].median),
                  f"**{fmt_ratio(ratio)}** ({fmt_ratio(low)}–{fmt_ratio(high)})",
                  f"{trained:+,} trained, {frozen:,} frozen")
        data[model] = {"shape": shape, "timings": timings, "ratio": ratio, "range": [low, high], "elements": elements}
    goal = (f"an ATTEMPT step ≤ {GOAL}× a PT step: " + ", ".join(
        f"{model} {fmt_ratio(r)} ({'met' if r <= GOAL else 'NOT met'})" for model, r in ratios.items()))
    notes = [
        "One step = the shipped `adapter.train._loss_and_gradients` (encode, the module's per-example prompts, "
        "forward, backward) + AdamW, on one fixed batch of byte-tokenised text with no padding; t5-small has random "
        "weights (the shape is what costs).",
        "ATTEMPT's extra work: its input pooling tokenises the batch's inputs again and gathers their embeddings, "
        "the d → 100 → d sub-network, the softmax over 7 prompts and the mix (B·l·d).",
        f"{torch.get_num_threads()} CPU thread(s).",
    ]
    harness.write_report(
        NAME, "10. An ATTEMPT adaptation step against a PT step",
        what="the time of one adaptation step of ATTEMPT's prompt module against `TargetPrompts` on the same batch.",
        machine=machine, tables=[table], goal=goal, notes=notes, data=data, quick=args.quick,
        elapsed_s=time.perf_counter() - started, write=not args.no_write, out=args.out,
    )


if __name__ == "__main__":
    main()
