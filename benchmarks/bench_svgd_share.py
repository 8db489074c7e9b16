"""Benchmark 2: the share of the SVGD update (RBF kernel + direction) in a full source step.

Two measurements in one run:
* inside real steps at the t5-small shape (l=100, d=512, M=5, B=6, n=156): the time between the
  entry of `rbf_kernel` and the return of `svgd_step` (kernel, median bandwidth, direction, −φ into
  `.grad`), divided by that step's total (forward, backward, SVGD, AdamW) — `common.SourceStep`;
* the SVGD update alone on (M, l·d) particles — exactly the two calls `svgd_step` makes,
  `rbf_kernel(flat)` then `svgd_direction(flat, scores, damping, bandwidth=h)` — at the tiny,
  t5-small and t5-base particle shapes, timed in every round next to the t5-small step, so each
  share is a per-round ratio. The t5-base shape (l·d = 76,800) needs no model.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

import common
from common import Machine, SourceStep, StepShape, Table, build_runner, fmt_pct, fmt_time

NAME = "02_svgd_share"
GOAL = 0.01
PAPER = 0.0035 / 0.42  # RTX 3090, t5-base: SVGD 0.0035 s vs backward 0.42 s


def svgd_update(flat: torch.Tensor, scores: torch.Tensor, damping: float):
    """The SVGD lines of svgd_step, verbatim."""
    from bmtpt_cli.svgd.kernel import rbf_kernel, svgd_direction

    _, h = rbf_kernel(flat, bandwidth=None)
    phi = svgd_direction(flat, scores, damping=damping, bandwidth=h)
    return -phi


def micro_case(m: int, dim: int, seed: int = 0):
    from bmtpt_cli.svgd.kernel import damping_lambda

    g = torch.Generator().manual_seed(seed)
    flat = torch.randn(m, dim, generator=g) * 0.5
    scores = torch.randn(m, dim, generator=g) * 1e-3
    damping = damping_lambda(m, dim)
    return lambda: svgd_update(flat, scores, damping)


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0], repeats=3)
    parser.add_argument("--micro-repeats", type=int, default=None, help="SVGD-alone calls per round (default 20)")
    parser.add_argument("--source-len", type=int, default=156, help="t5-small source tokens n (default 156)")
    args = common.finish_args(parser.parse_args())
    micro_repeats = args.micro_repeats or (5 if args.quick else 20)
    started = time.perf_counter()
    machine = Machine.detect()

    cases = {  # name -> (M, l, d)
        "tiny (M=5, l=8, d=64)": (5, 8, 64),
        "t5-small (M=5, l=100, d=512)": (5, 100, 512),
        "t5-base (M=5, l=100, d=768)": (5, 100, 768),
        "t5-base, M=10": (10, 100, 768),
    }
    micro = {name: micro_case(m, l * d) for name, (m, l, d) in cases.items()}
    for fn in micro.values():  # warm-up
        for _ in range(3):
            fn()

    shape = StepShape("t5-small", 100, 5, 6, 28 if args.quick else args.source_len, 4)
    runner = build_runner("t5-small")
    step = SourceStep(runner, shape)
    print(f"[{shape.label()}] warm-up {args.warmup}, repeats {args.repeats}", flush=True)
    for _ in range(args.warmup):
        step()

    rounds = []
    for r in range(args.repeats):
        comps = step()
        total = sum(comps.values())
        row = {"step_s": total, "svgd_in_step_s": comps["svgd"], "components": comps, "micro_s": {},
               "load_1min": os.getloadavg()[0]}
        for name, fn in micro.items():
            row["micro_s"][name] = common.measure(fn, warmup=1, repeats=micro_repeats).median
        rounds.append(row)
        print(f"  round {r + 1}/{args.repeats}: step {fmt_time(total)}, SVGD in step {fmt_time(comps['svgd'])}",
              flush=True)

    step_med = statistics.median(r["step_s"] for r in rounds)
    share_in_step = statistics.median(r["svgd_in_step_s"] / r["step_s"] for r in rounds)
    table = Table(
        f"SVGD update (rbf_kernel + svgd_direction) vs a full t5-small source step ({shape.label()}; "
        f"{args.repeats} rounds after {args.warmup} warm-up; SVGD-alone: median of {micro_repeats} calls per round)",
        ["what", "particles (M, l·d)", "median time", "share of the t5-small step (median of per-round ratios)"],
    )
    table.add("full t5-small step (forward + backward + SVGD + AdamW)", "(5, 51,200)", fmt_time(step_med), "100 %")
    table.add("**SVGD inside that step** (rbf_kernel entry → svgd_step return)", "(5, 51,200)",
              fmt_time(statistics.median(r["svgd_in_step_s"] for r in rounds)), f"**{fmt_pct(share_in_step, 3)}**")
    shares = {}
    for name, (m, l, d) in cases.items():
        med = statistics.median(r["micro_s"][name] for r in rounds)
        share = statistics.median(r["micro_s"][name] / r["step_s"] for r in rounds)
        shares[name] = share
        table.add(f"SVGD alone, {name}", f"({m}, {l * d:,})", fmt_time(med), fmt_pct(share, 3))
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
        "`svgd_step` computes the kernel twice: `rbf_kernel` for h, then `svgd_direction` calls `rbf_kernel` again "
        "with that h (two `cdist`s on (M, l·d)); both are inside the SVGD time above.",
        "CPU contention: the SVGD update is dozens of small ATen ops, each a parallel region over the 2 intra-op "
        "threads; when other processes hold the cores, each region likely waits for a descheduled thread (a "
        "scheduler time slice, milliseconds), so in busy rounds the update takes tens of times its quiet time "
        "while the model's large matrix multiplies slow down 2–3×. The median over rounds is the figure judged; "
        "the per-round table shows the spread.",
        "`train_source` also calls `mean_pairwise_distance` (a third cdist) per step for its log; see benchmark 1's "
        "bookkeeping row.",
    ]
    details = []
    if not met:
        details.append(("torch.profiler, one SVGD update at the t5-base particle shape",
                        common.profile_top_ops(micro["t5-base (M=5, l=100, d=768)"])))
    common.write_report(
        NAME, "2. Share of the SVGD update in a source step",
        what="time of the SVGD update (RBF kernel with median bandwidth + damped SVGD direction on the flattened "
             "(M, l·d) particles) relative to one full source step at the t5-small shape, measured inside the step "
             "and alone at the tiny, t5-small and t5-base particle shapes.",
        machine=machine, tables=[table, per_round], goal=goal, notes=notes, details=details,
        data={"rounds": rounds, "share_in_step": share_in_step, "shares_alone": shares, "shape": shape.__dict__},
        quick=args.quick, elapsed_s=time.perf_counter() - started, write=not args.no_write,
    )


if __name__ == "__main__":
    main()
