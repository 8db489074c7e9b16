"""Benchmark 2: the share of the SVGD update (RBF kernel + direction) in a full source step.

Two measurements in one run, both read from the shipped code's `bmtpt.svgd` record_function range
(scores, `rbf_kernel` once for K and h, `svgd_direction` with that K, −φ into `.grad`):
* inside real steps at the t5-small shape (l=100, d=512, M=5, B=6, n=156): each round profiles
  one shipped `source_update` (`workloads.SourceStep`) with torch.profiler; share = its
  `bmtpt.svgd` range ÷ the whole `source_update` call in that profile;
* the SVGD update alone on (M, l, d) particles — the shipped `svgd_step` with a synthetic
  quadratic likelihood in place of the LM (`workloads.SvgdAlone`), its `bmtpt.svgd` range — at the
  tiny, t5-small and t5-base particle shapes, profiled in every round next to the t5-small step,
  so each share is a per-round ratio. The t5-base shape (l·d = 76,800) needs no model.
"""

from __future__ import annotations

import os
import statistics
import time

import harness
from harness import Machine, Table, fmt_pct, fmt_time
from workloads import SourceStep, StepShape, SvgdAlone, build_runner

NAME = "02_svgd_share"
GOAL = 0.01
PAPER = 0.0035 / 0.42  # RTX 3090, t5-base: SVGD 0.0035 s vs backward 0.42 s


def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=3)
    parser.add_argument("--micro-repeats", type=int, default=None, help="SVGD-alone calls per round (default 20)")
    parser.add_argument("--source-len", type=int, default=156, help="t5-small source tokens n (default 156)")
    args = harness.finish_args(parser.parse_args())
    micro_repeats = args.micro_repeats or (5 if args.quick else 20)
    started = time.perf_counter()
    machine = Machine.detect()

    cases = {  # name -> (M, l, d)
        "tiny (M=5, l=8, d=64)": (5, 8, 64),
        "t5-small (M=5, l=100, d=512)": (5, 100, 512),
        "t5-base (M=5, l=100, d=768)": (5, 100, 768),
        "t5-base, M=10": (10, 100, 768),
    }
    micro = {name: SvgdAlone(m, l, d) for name, (m, l, d) in cases.items()}
    for fn in micro.values():  # warm-up
        for _ in range(3):
            fn()

    shape = StepShape("t5-small", 100, 5, 6, 28 if args.quick else args.source_len, 4)
    runner = build_runner("t5-small")
    step = SourceStep.for_shape(runner, shape)
    print(f"[{shape.label()}] warm-up {args.warmup}, repeats {args.repeats}", flush=True)
    for _ in range(args.warmup):
        step()

    rounds = []
    for r in range(args.repeats):
        comps = step.profile(1)  # one shipped source_update under torch.profiler: its bmtpt.* ranges
        total = comps["total"]
        row = {"step_s": total, "svgd_in_step_s": comps["svgd"], "components": comps, "micro_s": {},
               "load_1min": os.getloadavg()[0]}
        for name, fn in micro.items():
            fn()  # warm-up
            row["micro_s"][name] = fn.profile(micro_repeats)
        rounds.append(row)
        print(f"  round {r + 1}/{args.repeats}: step {fmt_time(total)}, SVGD in step {fmt_time(comps['svgd'])}",
              flush=True)

    step_med = statistics.median(r["step_s"] for r in rounds)
    share_in_step = statistics.median(r["svgd_in_step_s"] / r["step_s"] for r in rounds)
    table = Table(
        f"SVGD update (rbf_kernel + svgd_direction) vs a full t5-small source step ({shape.label()}; "
        f"{args.repeats} rounds after {args.warmup} warm-up, each profiling one step; SVGD alone: mean of "
        f"{micro_repeats} profiled calls per round)",
        ["what", "particles (M, l·d)", "median time", "share of the t5-small step (median of per-round ratios)"],
    )
    table.add("full t5-small step (source_update: encode + forward + backward + SVGD + AdamW + record)", "(5, 51,200)",
              fmt_time(step_med), "100 %")
    table.add("**SVGD inside that step** (its bmtpt.svgd range)", "(5, 51,200)",
              fmt_time(statistics.median(r["svgd_in_step_s"] for r in rounds)), f"**{fmt_pct(share_in_step, 3)}**")
    shares = {}
    for name, (m, l, d) in cases.items():
        med = statistics.median(r["micro_s"][name] for r in rounds)
        share = statistics.median(r["micro_s"][name] / r["step_s"] for r in rounds)
        shares[name] = share
        table.add(f"SVGD alone (svgd_step's bmtpt.svgd range), {name}", f"({m}, {l * d:,})", fmt_time(med), fmt_pct(share, 3))
    table.add("paper (RTX 3090, t5-base): 0.0035 s SVGD vs 0.42 s backward", "(5, 76,800)", "3.5 ms",
              fmt_pct(PAPER, 2))
    per_round = Table("Per round (the machine is shared: a busy round slows the many small SVGD ops far more than "
                      "the big matrix multiplies, see notes)",
                      ["round", "1-min load average", "step", "SVGD in step", "share", "SVGD alone, t5-base shape"])
    for i, r in enumerate(rounds, 1):
        per_round.add(i, f"{r['load_1min']:.2f}", fmt_time(r["step_s"]), fmt_time(r["svgd_in_step_s"]),
                      fmt_pct(r["svgd_in_step_s"] / r["step_s"], 3), fmt_time(r["micro_s"]["t5-base (M=5, l=100, d=768)"]))

    base_share = shares["t5-base (M=5, l=100, d=768)"]
    met = share_in_step < GOAL and base_share < GOAL
    goal = (f"SVGD share < 1 %: {fmt_pct(share_in_step, 3)} inside the t5-small step, "
            f"{fmt_pct(base_share, 3)} for the t5-base particle shape against the t5-small step "
            f"(paper 0.83 %) → {'MET' if met else 'MISSED'}.")
    notes = [
        "On this CPU the frozen-T5 passes are far slower than on the paper's GPU, so the same O(M²·l·d) "
        "kernel work is an even smaller share; the t5-base row is a conservative bound for a t5-base step "
        "(a t5-base forward+backward costs more than a t5-small one).",
        "All times are torch.profiler CPU times of the shipped code's record_function ranges (the step's "
        "`bmtpt.svgd` and the whole `source_update` call, in the same profile), so share = ratio within one "
        "profile; the profiler's small per-op cost makes the many small SVGD ops, if anything, look dearer.",
        "`svgd_step` builds the kernel once: `particle_kernel` gives K, h and the record's mean pairwise distance "
        "from one `cdist` on (M, l·d) and one host copy of the (M, M) distances, and `svgd_direction(..., kernel=K)` "
        "reuses K. The SVGD-alone rows run the same `svgd_step` with a quadratic "
        "likelihood instead of the LM (`benchmarks/workloads.py::SvgdAlone`); only its `bmtpt.svgd` range is read.",
        "CPU contention: the SVGD update is dozens of small ATen ops, each a parallel region over the 2 intra-op "
        "threads; when other processes hold the cores, each region likely waits for a descheduled thread (a "
        "scheduler time slice, milliseconds), so in busy rounds the update takes tens of times its quiet time "
        "while the model's large matrix multiplies slow down 2–3×. The median over rounds is the figure judged; "
        "the per-round table shows the spread.",
    ]
    details = []
    if not met:
        details.append(("torch.profiler, one SVGD update at the t5-base particle shape",
                        harness.profile_top_ops(micro["t5-base (M=5, l=100, d=768)"])))
    harness.write_report(
        NAME, "2. Share of the SVGD update in a source step",
        what="time of the SVGD update (RBF kernel with median bandwidth + damped SVGD direction on the flattened "
             "(M, l·d) particles: the shipped step's `bmtpt.svgd` range) relative to one full shipped source step "
             "at the t5-small shape, measured inside the step and alone at the tiny, t5-small and t5-base particle "
             "shapes.",
        machine=machine, tables=[table, per_round], goal=goal, notes=notes, details=details,
        data={"rounds": rounds, "share_in_step": share_in_step, "shares_alone": shares, "shape": shape.__dict__},
        quick=args.quick, elapsed_s=time.perf_counter() - started, write=not args.no_write, out=args.out,
    )


if __name__ == "__main__":
    main()
