"""Benchmark 11: a bmtpt-ensemble adaptation step (M members, one pass of M·B sequences) against M
single-prompt steps, and ensemble scoring against M single scorings (#25).

The ensemble step is the shipped `adapter.train._loss_and_gradients` with `methods.ensemble.EnsemblePrompts`
(the batch repeated M times, one forward and backward) + AdamW; the baseline is the same function with M
separate `TargetPrompts`, one step each (M forwards and backwards of B sequences), + AdamW each. Scoring: rank
scoring of E examples under a `PromptEnsemble` (every (member, example) pair in shared passes) against M
`score_task` calls of one prompt each. Timed interleaved; ratios are medians of per-round ratios. Goal: the
ensemble step ≤ 1.1 × the M single steps' total on a CPU.

    .venv/bin/python benchmarks/bench_ensemble_step.py [--quick] [--models tiny,t5-small] [--members 5]
"""

from __future__ import annotations

import time

import torch

import harness
import workloads
from harness import Machine, Table, fmt_ratio, fmt_time, measure_interleaved, paired_ratio, paired_ratio_range
from workloads import build_runner

NAME = "11_ensemble_step"
GOAL = 1.1


def step_functions(runner, *, members: int, length: int, batch: int, source_len: int, target_len: int):
    """The ensemble step and the M single steps on one fixed batch, as zero-argument functions."""
    from bmtpt_cli.adapter.prompt import TargetPrompts
    from bmtpt_cli.adapter.train import AdaptConfig
    from bmtpt_cli.methods.ensemble import EnsemblePrompts
    from bmtpt_cli.settings import build, defaults

    g = torch.Generator().manual_seed(0)
    starts = 0.5 * torch.randn(members, length, runner.d_model, generator=g)
    centre = starts.mean(dim=0)
    pairs = [("task", e) for e in workloads.text_examples(batch, source_len, target_len, seed=1)]
    config = build(AdaptConfig, defaults("adapt"), batch_size=batch, warmup_steps=0, eval_every=None)

    def trainer(module):
        return workloads.adapt_step(runner, module, pairs, config, centre)

    ensemble = trainer(EnsemblePrompts(starts, ["task"]))
    singles = [trainer(TargetPrompts(start, ["task"])) for start in starts]

    def one_by_one():
        for step in singles:
            step()

    return {"ensemble": ensemble, "singles": one_by_one, "single": singles[0]}


def step_peak_mib(step) -> float | None:
    """The resident-set growth of one call of `step` over what was live before it (MiB), or None where
    the kernel's high-water mark cannot be reset."""
    harness.release_free_memory()
    before = harness.current_rss_mib()
    if not harness.reset_peak_rss():
        return None
    step()
    return harness.peak_rss_mib() - before


def score_functions(runner, *, members: int, length: int, examples: int, source_len: int):
    """Rank scoring of `examples` under the ensemble, and under each member alone."""
    from bmtpt_cli.data.task import TextExample
    from bmtpt_cli.scoring.score import PromptEnsemble, rank

    g = torch.Generator().manual_seed(2)
    prompts = 0.5 * torch.randn(members, length, runner.d_model, generator=g)
    texts = workloads.text_examples(examples, source_len, 2, seed=3)
    data = [TextExample(e.source, "yes", 0) for e in texts]
    labels = ("yes", "no")

    def ensemble():
        with torch.no_grad():
            rank(runner, PromptEnsemble(prompts), data, labels)

    def singles():
        with torch.no_grad():
            for prompt in prompts:
                rank(runner, prompt, data, labels)

    return {"ensemble": ensemble, "singles": singles}


def _peaks(peaks: dict) -> str:
    if None in peaks.values():
        return "n/a (VmHWM cannot be reset here)"
    return f"{peaks['one prompt']:.1f} → {peaks['ensemble']:.1f} MiB"


def main() -> None:
    args = harness.adapt_step_args(__doc__.splitlines()[0], repeats=15, extra=lambda parser: parser.add_argument(
        "--members", type=int, default=5, help="M, the ensemble's members (the paper's particles)"))
    started = time.perf_counter()
    machine = Machine.detect()
    m = args.members
    steps = Table(f"An adaptation step: the ensemble (M = {m}, one pass of M·B) against M single-prompt steps",
                  ["model", "shape", f"{m} single steps", "ensemble step", "ratio (median of rounds; range)", "trained elements",
                   "step's peak memory over live (one prompt → ensemble)"])
    scoring = Table(f"Rank scoring 64 examples: the ensemble (M = {m}) against M single-prompt scorings",
                    ["model", f"{m} single scorings", "ensemble", "ratio (median; range)"])
    data, goal_parts = {}, []
    for model in args.models.split(","):
        runner = build_runner(model, max_source_length=256, max_target_length=16)
        length = 8 if model == "tiny" else 100
        shape = dict(length=length, batch=args.batch, source_len=64, target_len=4)
        fns = step_functions(runner, members=m, **shape)
        single = fns.pop("single")
        timings = measure_interleaved(fns, warmup=args.warmup, repeats=args.repeats)
        peaks = {"one prompt": step_peak_mib(single), "ensemble": step_peak_mib(fns["ensemble"])}
        ratio = paired_ratio(timings["ensemble"], timings["singles"])
        low, high = paired_ratio_range(timings["ensemble"], timings["singles"])
        elements = m * (length * runner.d_model + length + runner.d_model)
        steps.add(model, f"l={length}, B={args.batch}, n=64, t=4", fmt_time(timings["singles"].median),
                  fmt_time(timings["ensemble"].median), f"**{fmt_ratio(ratio)}** ({fmt_ratio(low)}–{fmt_ratio(high)})",
                  f"{elements:,} (M × one prompt's)", _peaks(peaks))
        scored = measure_interleaved(score_functions(runner, members=m, length=length, examples=64, source_len=64),
                                     warmup=1, repeats=max(3, args.repeats // 3))
        s_ratio = paired_ratio(scored["ensemble"], scored["singles"])
        s_low, s_high = paired_ratio_range(scored["ensemble"], scored["singles"])
        scoring.add(model, fmt_time(scored["singles"].median), fmt_time(scored["ensemble"].median),
                    f"{fmt_ratio(s_ratio)} ({fmt_ratio(s_low)}–{fmt_ratio(s_high)})")
        data[model] = {"shape": shape, "members": m, "peak_mib": peaks,
                       "step": {"timings": timings, "ratio": ratio, "range": [low, high]},
                       "scoring": {"timings": scored, "ratio": s_ratio, "range": [s_low, s_high]}}
        goal_parts.append(f"{model} {fmt_ratio(ratio)} ({'met' if ratio <= GOAL else 'NOT met'})")
    notes = [
        "One step = the shipped `adapter.train._loss_and_gradients` (encode, the prompts, forward, backward) + AdamW, "
        "with the prior term toward the members' mean; on one fixed batch of byte-tokenised text with no padding; "
        "t5-small has random weights (the shape is what costs).",
        "Memory: the ensemble holds M × one prompt's trained elements and AdamW state, and its pass has M·B "
        "sequences' activations (the pass plan chunks it when that does not fit, as for source training).",
        f"{torch.get_num_threads()} CPU thread(s).",
    ]
    harness.write_report(
        NAME, "11. A bmtpt-ensemble step and scoring against M single-prompt ones",
        what="the time of one ensemble adaptation step (M members in one pass) and of ensemble rank scoring, "
             "against M single-prompt steps and scorings.",
        machine=machine, tables=[steps, scoring], goal=f"an ensemble step ≤ {GOAL}× M single steps: " + ", ".join(goal_parts),
        notes=notes, data=data, quick=args.quick, elapsed_s=time.perf_counter() - started, write=not args.no_write,
        out=args.out,
    )


if __name__ == "__main__":
    main()
