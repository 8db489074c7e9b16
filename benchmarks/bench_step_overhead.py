"""Benchmark 1: a source SVGD step's time over the bare frozen-T5 forward+backward on the same batch.

The bare pass is the floor any implementation pays: `model(inputs_embeds=concat(leaf prompt, token
embeddings), ...)`, cross-entropy, backward into the leaf prompt, on the same M·B sequences. The
step is the shipped `bmtpt_cli.source.svgd.source_update` (`workloads.SourceStep`: `svgd_step` —
tokenising its B examples, forward, backward, SVGD — then AdamW, the schedule, the finiteness
checks and the step record), on text examples whose byte tokenisation is the bare pass's token
batch. Both are timed interleaved; the ratio is the median of per-round ratios. The split of the
step into parts comes from a torch.profiler run over real steps, read by the step's own
`bmtpt.*` record_function ranges. Tokenisation is also timed apart on real demo text
(`runner.encode` of 30 examples, and of the B = 6 a step really tokenises), next to the real step on
those 6 examples at the tiny shape, to show the data cost.
"""

from __future__ import annotations

import time

import harness
import workloads
from harness import (
    Machine, Table, fmt_ratio, fmt_time, measure_interleaved, paired_ratio, paired_ratio_range,
)
from workloads import BarePass, SourceStep, StepShape, build_runner

NAME = "01_step_overhead"
GOAL = 1.05
OWN_GOAL = 1.05  # issue 13: the step ÷ its own forward + backward
COMPONENTS = [  # (bmtpt.* range, what runs in it)
    ("encode", "bmtpt.encode: runner.encode of the B examples (ByT5 byte tokenizer, cached ids)"),
    ("forward", "bmtpt.forward: runner.particle_loss_sums (embedding lookup, repeat, model, CE)"),
    ("backward", "bmtpt.backward: torch.autograd.grad to the particles"),
    ("reduce", "bmtpt.reduce: per-token means of the loss sums and gradients"),
    ("svgd", "bmtpt.svgd: scores, particle_kernel (K, h, spread from one cdist) + svgd_direction, −φ into .grad"),
    ("optimizer", "bmtpt.optimizer: fused AdamW.step, grad = None, scheduler.step"),
    ("rest", "rest of source_update: plan lookup, loss copy, finiteness checks, StepRecord"),
]


def shapes(args) -> list[StepShape]:
    out = []
    if "tiny" in args.shapes:
        out.append(StepShape("tiny", 8, 5, 6, 64, 4))
    if "t5-small" in args.shapes:
        out.append(StepShape("t5-small", 100, 5, 6, 28 if args.quick else args.source_len, 4))
    return out


def run_shape(shape: StepShape, args, encode_time: dict) -> tuple[Table, dict, dict, list]:
    runner = build_runner(shape.model)
    step = SourceStep.for_shape(runner, shape)
    bare = BarePass(step)

    tiny = shape.model == "tiny"
    repeats = args.tiny_repeats if tiny else args.repeats
    warmup = max(3, args.warmup) if tiny else args.warmup
    profile_steps = args.profile_steps or ((5 if args.quick else 20) if tiny else (1 if args.quick else 2))
    print(f"[{shape.label()}] warm-up {warmup}, repeats {repeats}, profiled steps {profile_steps}", flush=True)
    timings = measure_interleaved({"bare": bare, "step": step}, warmup=warmup, repeats=repeats,
                                  on_round=None if tiny else lambda r: print(f"  round {r + 1}/{repeats}", flush=True))
    bare_t, step_t = timings["bare"], timings["step"]
    parts = step.profile(profile_steps, alongside={"bare": bare})  # per-step seconds under the profiler
    prof_bare = parts["bare"]
    split_steps = (50 if args.quick else 200) if tiny else max(2, repeats)
    split = step.wall_clock_split(split_steps)

    ratio = paired_ratio(step_t, bare_t)
    lo, hi = paired_ratio_range(step_t, bare_t)
    table = Table(f"{shape.label()} — {repeats} interleaved rounds after {warmup} warm-up; parts: torch.profiler "
                  f"over {profile_steps} steps and bare passes (round-robin), per step",
                  ["what", "median time", "÷ bare (median of per-round ratios)", "per-round range"])
    table.add("**bare** frozen-T5 forward+backward (the floor)", fmt_time(bare_t.median), "1.000×", "")
    table.add("**full SVGD step** (the shipped source_update, timed without the profiler)", fmt_time(step_t.median),
              f"**{fmt_ratio(ratio)}**", f"{lo:.3f}–{hi:.3f}")
    table.add("profiled: bare pass", fmt_time(prof_bare), "1.000× (profiled)", "")
    for key, label in COMPONENTS:
        table.add(f"profiled part: {label}", fmt_time(parts[key]), fmt_ratio(parts[key] / prof_bare) + " (profiled)", "")
    runner_fb = parts["forward"] + parts["backward"]
    table.add("profiled: runner forward+backward only (bmtpt.forward + bmtpt.backward)", fmt_time(runner_fb),
              fmt_ratio(runner_fb / prof_bare) + " (profiled)", "")
    table.add("profiled: whole source_update", fmt_time(parts["total"]),
              fmt_ratio(parts["total"] / prof_bare) + " (profiled)", "")
    table.add("profiled: source_update without its tokenising (total − bmtpt.encode)",
              fmt_time(parts["total"] - parts["encode"]),
              fmt_ratio((parts["total"] - parts["encode"]) / prof_bare) + " (profiled)", "")
    for count, seconds in encode_time.items():
        table.add(f"tokenising {count} real demo examples (runner.encode, timed apart)", fmt_time(seconds),
                  fmt_ratio(seconds / bare_t.median), "(ratio of medians)")
    own_table, own_ratio, own_range = split_table(shape, split)
    data = {"shape": shape.__dict__, "ratio_step_over_bare": ratio, "bare": bare_t, "step": step_t,
            "ratio_step_over_own_forward_backward": own_ratio, "own_ratio_range": own_range, "wall_clock_split": split,
            "runner": runner_fb, "profiled_steps": profile_steps, "profiled_bare": prof_bare,
            "profiled_step": parts["total"], **{f"component_{k}": parts[k] for k, _ in COMPONENTS}}
    profiles, extra = {}, [own_table]
    if ratio > GOAL:
        print("  goal missed: profiling", flush=True)
        if tiny:
            extra.append(ablation(step, bare, repeats, warmup, data))
            profiles["torch.profiler: ops by extra self CPU time per call, full step minus bare pass (tiny)"] = \
                harness.profile_diff(step, bare)
            profiles["cProfile, one full step at tiny (tottime)"] = harness.cprofile_top(step)
        else:
            profiles[f"torch.profiler, one full step at {shape.model} (self CPU time)"] = harness.profile_top_ops(step)
            profiles[f"torch.profiler, one bare pass at {shape.model} (self CPU time)"] = harness.profile_top_ops(bare)
    return table, data, profiles, extra


def split_table(shape: StepShape, split: list[dict[str, float]]) -> tuple[Table, float, tuple[float, float]]:
    """The unprofiled split of the step into its phases, and the step ÷ its own forward + backward
    (median of per-step ratios, with the middle 80 % of them as the range)."""
    import statistics

    own = sorted(row["total"] / (row["forward"] + row["backward"]) for row in split)
    ratio = statistics.median(own)
    spread = (own[len(own) // 10], own[-1 - len(own) // 10])
    median_fb = statistics.median(row["forward"] + row["backward"] for row in split)
    table = Table(f"{shape.model}: the step split into its phases by wall clock, unprofiled "
                  f"(`runtime.profiling.wall_clock_phases`), median over {len(split)} consecutive steps",
                  ["what", "median time", "÷ own forward+backward (ratio of medians)"])
    for key, label in COMPONENTS:
        seconds = statistics.median(row.get(key, 0.0) for row in split)
        table.add(label, fmt_time(seconds), f"{seconds / median_fb:.4f}")
    table.add("own forward+backward (bmtpt.forward + bmtpt.backward)", fmt_time(median_fb), "1.0000")
    table.add("everything else (the step minus its forward+backward)",
              fmt_time(statistics.median(row["total"] - row["forward"] - row["backward"] for row in split)), "")
    table.add("**whole source_update ÷ its own forward+backward** (median of per-step ratios; 10th–90th "
              "percentile)", fmt_time(statistics.median(row["total"] for row in split)),
              f"**{ratio:.4f}** ({spread[0]:.4f}–{spread[1]:.4f})")
    return table, ratio, spread


def ablation(step: SourceStep, bare: BarePass, repeats: int, warmup: int, data: dict) -> Table:
    """Where the gap comes from: the bare pass with one of the shipped runner's pieces in place of its own."""
    import torch

    from bmtpt_cli.runner.runner import token_cross_entropy

    runner, particles = step.runner, step.particles

    def bare_with_runner_ce():  # the runner's loss: float32 token CE, reduction='none', then a sum
        x = torch.cat([bare.prompt, bare.token_embeds], dim=1)
        logits = bare.model(inputs_embeds=x, attention_mask=bare.mask, decoder_input_ids=bare.decoder_input_ids).logits
        token_cross_entropy(logits, bare.labels).sum().backward()
        bare.prompt.grad = None

    def runner_fb():  # what bmtpt.forward + bmtpt.backward run, on the pre-built batch
        sums = runner.particle_loss_sums(particles, step.batch)
        torch.autograd.grad(sums.sum(), particles)

    def encode():
        return workloads.encode_examples(runner, step.examples)

    fns = {
        "bare": bare,
        "bare + the runner's loss (token_cross_entropy, then a sum)": bare_with_runner_ce,
        "runner.particle_loss_sums + autograd.grad on the pre-built batch (embedding lookup, prompt expand/copy, "
        "mask cat, CE)": runner_fb,
        "runner.encode of the step's B examples": encode,
        "full step (source_update)": step,
    }
    n = max(repeats, 30)
    timings = measure_interleaved(fns, warmup=warmup, repeats=n)
    table = Table(f"Where the tiny-shape gap comes from: variants of the bare pass, {n} interleaved rounds",
                  ["variant", "median time", "÷ bare (median of per-round ratios)"])
    for name, t in timings.items():
        table.add(name, fmt_time(t.median), fmt_ratio(paired_ratio(t, timings["bare"])))
    data["ablation"] = timings
    return table


def tokenisation(args) -> tuple[dict[int, float], Table, dict]:
    """runner.encode on real demo text (30 and 6 examples); the shipped step on those 6 examples at tiny."""
    runner = build_runner("tiny")
    examples30 = workloads.demo_text_batch(6)  # 6 from each of the 5 demo tasks
    examples6 = examples30[::5][:6]  # one or two per task: the B = 6 examples a paper-sized step tokenises
    real_step = SourceStep(runner, examples6, particles=5, prompt_length=8, model="tiny")

    def encoder(examples):
        sources, targets = [e.source for e in examples], [e.target for e in examples]
        return lambda: runner.encode(sources, targets)

    timings = measure_interleaved({"real": real_step, "encode6": encoder(examples6), "encode30": encoder(examples30)},
                                  warmup=3, repeats=args.tiny_repeats)
    b6, b30 = encoder(examples6)(), encoder(examples30)()
    table = Table("Data cost on real demo text, tiny model (l=8, M=5), ByT5 byte tokenizer — "
                  f"6 examples pad to {tuple(b6.input_ids.shape)} source / {tuple(b6.labels.shape)} target ids, "
                  f"30 examples to {tuple(b30.input_ids.shape)} / {tuple(b30.labels.shape)}",
                  ["what", "median time", "÷ real step (median of per-round ratios)"])
    table.add("real step (source_update) on 6 examples (M·B = 30 sequences; tokenises inside)",
              fmt_time(timings["real"].median), "1.000×")
    table.add("runner.encode of those 6 examples", fmt_time(timings["encode6"].median),
              fmt_ratio(paired_ratio(timings["encode6"], timings["real"])))
    table.add("runner.encode of 30 examples (6 per demo task)", fmt_time(timings["encode30"].median),
              fmt_ratio(paired_ratio(timings["encode30"], timings["real"])))
    data = {"real_step_6": timings["real"], "encode_6": timings["encode6"], "encode_30": timings["encode30"],
            "shape_6": list(b6.input_ids.shape), "shape_30": list(b30.input_ids.shape)}
    return {6: timings["encode6"].median, 30: timings["encode30"].median}, table, data


def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=5)
    parser.add_argument("--tiny-repeats", type=int, default=None, help="repeats at the tiny shape (default 40)")
    parser.add_argument("--profile-steps", type=int, default=None,
                        help="steps profiled for the split into parts (default: tiny 20, t5-small 2; --quick 5 / 1)")
    parser.add_argument("--shapes", default="tiny,t5-small", help="comma-separated: tiny, t5-small")
    parser.add_argument("--source-len", type=int, default=156,
                        help="t5-small source tokens n (default 156: l + n = 256 encoder tokens)")
    args = harness.finish_args(parser.parse_args())
    if args.tiny_repeats is None:
        args.tiny_repeats = 10 if args.quick else 40
    started = time.perf_counter()
    machine = Machine.detect()

    encode_time, data_table, data_cost = tokenisation(args)
    tables, data, details, ratios, own = [], {"data_cost": data_cost}, [], {}, {}
    for shape in shapes(args):
        table, shape_data, profiles, extra = run_shape(shape, args, encode_time)
        tables.append(table)
        tables.extend(extra)
        data[shape.model] = shape_data
        ratios[shape.model] = shape_data["ratio_step_over_bare"]
        own[shape.model] = shape_data["ratio_step_over_own_forward_backward"]
        details += list(profiles.items())
    tables.append(data_table)

    verdicts = [f"{m} {r:.3f}× ({'met' if r <= GOAL else 'MISSED'})" for m, r in ratios.items()]
    met = all(r <= GOAL for r in ratios.values())
    own_verdicts = [f"{m} {r:.3f}× ({'met' if r <= OWN_GOAL else 'MISSED'})" for m, r in own.items()]
    own_met = all(r <= OWN_GOAL for r in own.values())
    goal = (f"full step ÷ bare forward+backward ≤ {GOAL:.2f}: {'; '.join(verdicts)} → "
            f"{'MET' if met else 'NOT MET at every shape'}. Step ÷ its own forward+backward (unprofiled, "
            f"issue 13) ≤ {OWN_GOAL:.2f}: {'; '.join(own_verdicts)} → {'MET' if own_met else 'NOT MET at every shape'}.")
    notes = [
        "The step is the shipped `bmtpt_cli.source.svgd.source_update`, on a state built by the shipped "
        "`start_source` from `bmtpt source`'s declared defaults "
        f"({workloads.config_summary(workloads.source_config(particles=5, prompt_length=8))}) — "
        "`benchmarks/workloads.py::SourceStep`. It tokenises "
        "its B examples every step, as training does; the examples are random letters whose byte tokenisation is "
        "exactly the bare pass's token batch (same ids, no padding).",
        "The headline ratio is wall-clock, without the profiler: the median over rounds of (this round's step ÷ "
        "this round's bare pass). The parts are the step's own `torch.profiler.record_function` ranges "
        "(`bmtpt.encode`, `.forward`, `.backward`, `.reduce`, `.svgd`, `.optimizer`), CPU time per step from one "
        "profiler session over real steps alternating with bare passes; they are ratios to the bare pass "
        "profiled in that same session (the profiler adds a little per op to both).",
        "Tokens are random lowercase letters (ByT5 byte ids); the t5-small shape has random weights and "
        "d = 512, l = 100; the tokenisation rows use ByT5's byte tokenizer (the tiny model's), since no "
        "SentencePiece model can be loaded offline.",
        "Why the step's fixed work costs ~1.2 ms at tiny when the same work looped warm costs ~0.3 ms: right after a forward + backward pass every piece of code runs 4–11× slower than when repeated (`benchmarks/probe_cold_after_backward.py --threads 1`: a first `torch.exp` 23 µs against 2.4 µs, a five-element list comprehension 14 µs against 1.3 µs), so the cost follows how much distinct code runs between the passes, not the arithmetic. The largest remaining piece is torch.optim's `AdamW.step`, ~330–360 µs right after a backward: its wrapper (profiler range, hooks) ~130 µs, then ~50 µs of its own Python over the functional `torch.optim.adam.adam`, whose grouping and dispatch cost ~130 µs over the fused kernel itself (~50 µs). Calling the kernel directly would take about 1.2 points off the tiny ratio; not done, because the schedule, checkpoints and resume rely on the torch.optim object and the kernel is a private API.",
    ]
    harness.write_report(
        NAME, "1. Source-step overhead over the bare frozen-T5 pass",
        what="time of one Damped-SVGD source step as shipped (`source_update`: tokenising, runner forward, "
             "backward to the particles, RBF kernel + SVGD direction, AdamW, checks and record) divided by the bare "
             "frozen-T5 forward+backward on the same M·B sequences of prompt + token embeddings; plus the "
             "tokenisation cost of a real 30-example batch.",
        machine=machine, tables=tables, goal=goal, notes=notes, details=details, data=data, quick=args.quick,
        elapsed_s=time.perf_counter() - started, write=not args.no_write, out=args.out,
    )


if __name__ == "__main__":
    main()
