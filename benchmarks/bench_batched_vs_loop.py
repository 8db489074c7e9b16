"""Benchmark 3: one batched pass for all M particles vs a Python loop over the particles.

Batched: `runner.particle_loss_sums(particles, batch) / target_tokens(batch)` on all M particles at once (M·B sequences in one
forward) + one `torch.autograd.grad` — what `svgd_step`'s `bmtpt.forward`/`bmtpt.backward` ranges do. Loop: for each particle j, a forward
of its B sequences (`runner.particle_loss_sums(θ_j[None], batch) / target_tokens(batch)`) and its own backward into θ_j — what
an implementation without the particle-major batching would do. Same token batch (`runner.encode` of
B texts, `workloads.shape_batch`), same gradients
(checked); timed interleaved, speed-up = median over rounds of loop ÷ batched. Minor page faults per
pass (getrusage) are recorded too, and the t5-small case is run a second time in a child process
with glibc's malloc told never to use mmap nor to trim the heap (MALLOC_MMAP_MAX_=0,
MALLOC_TRIM_THRESHOLD_=16 GiB), because the batched pass's activations exceed glibc's largest mmap
threshold (32 MiB) and are mapped and unmapped — page-faulted afresh — on every pass.
"""

from __future__ import annotations

import json
import os
import statistics
import resource
import subprocess
import sys
import tempfile
import time

import torch

import harness
import workloads
from harness import Machine, Table, fmt_ratio, fmt_time, measure_interleaved, paired_ratio, paired_ratio_range
from workloads import StepShape, build_runner

from bmtpt_cli.runner.runner import target_tokens

NAME = "03_batched_vs_loop"
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30)}


def with_faults(fn, sink: list):
    """`fn`, recording the minor page faults of each call into `sink`."""
    def wrapped():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        fn()
        sink.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return wrapped


def variants(runner, shape: StepShape):
    batch = workloads.shape_batch(runner, shape)  # runner.encode of B texts: exactly (B, n) / (B, t) ids
    particles = torch.nn.Parameter(workloads.sample_particles(runner, shape.particles, shape.prompt_length))
    leaves = [particles.detach()[j : j + 1].clone().requires_grad_(True) for j in range(shape.particles)]

    def batched():
        losses = runner.particle_loss_sums(particles, batch) / target_tokens(batch)  # (M,)
        (grads,) = torch.autograd.grad(losses.sum(), particles)
        return grads

    def loop():
        grads = []
        for leaf in leaves:
            loss = runner.particle_loss_sums(leaf, batch) / target_tokens(batch)  # (1,)
            (grad,) = torch.autograd.grad(loss.sum(), leaf)
            grads.append(grad)
        return torch.cat(grads)

    g1, g2 = batched(), loop()
    err = float((g1 - g2).abs().max() / g1.abs().max().clamp_min(1e-30))
    return {"batched (one pass, M·B sequences)": batched, "loop (M passes of B sequences)": loop}, err


def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=3)
    parser.add_argument("--tiny-repeats", type=int, default=None, help="repeats at the tiny shape (default 30)")
    parser.add_argument("--shapes", default="tiny,t5-small", help="comma-separated: tiny, t5-small")
    parser.add_argument("--source-len", type=int, default=156, help="t5-small source tokens n (default 156)")
    parser.add_argument("--no-malloc-variant", action="store_true",
                        help="skip the t5-small re-run with mmap-free glibc malloc")
    parser.add_argument("--_json", default=None, help=argparse_suppress())
    args = harness.finish_args(parser.parse_args())
    tiny_repeats = args.tiny_repeats or (8 if args.quick else 30)
    started = time.perf_counter()
    machine = Machine.detect()

    shapes = []
    if "tiny" in args.shapes:
        shapes.append(StepShape("tiny", 8, 5, 6, 64, 4))
    if "t5-small" in args.shapes:
        shapes.append(StepShape("t5-small", 100, 5, 6, 28 if args.quick else args.source_len, 4))

    table = Table("Forward + backward to all M particles: one batched pass vs a loop over particles "
                  "(interleaved rounds after warm-up)",
                  ["shape", "rounds", "batched", "loop", "speed-up loop ÷ batched (median of per-round ratios)",
                   "per-round range", "page faults per pass, batched / loop (median)", "max rel. grad difference"])
    data, speedups = {}, {}
    for shape in shapes:
        runner = build_runner(shape.model)
        fns, err = variants(runner, shape)
        tiny = shape.model == "tiny"
        repeats, warmup = (tiny_repeats, max(3, args.warmup)) if tiny else (args.repeats, args.warmup)
        print(f"[{shape.label()}] warm-up {warmup}, repeats {repeats}", flush=True)
        faults = {name: [] for name in fns}
        fns = {name: with_faults(fn, faults[name]) for name, fn in fns.items()}
        timings = measure_interleaved(fns, warmup=warmup, repeats=repeats,
                                      on_round=None if tiny else lambda r: print(f"  round {r + 1}", flush=True))
        (bn, b), (ln, lp) = list(timings.items())
        fb, fl = (statistics.median(faults[n][-repeats:]) for n in (bn, ln))
        speedup = paired_ratio(lp, b)
        lo, hi = paired_ratio_range(lp, b)
        speedups[shape.model] = speedup
        table.add(shape.label(), repeats, fmt_time(b.median), fmt_time(lp.median), f"**{fmt_ratio(speedup, 2)}**",
                  f"{lo:.2f}–{hi:.2f}", f"{fb:,.0f} / {fl:,.0f}", f"{err:.1e}")
        data[shape.model] = {"shape": shape.__dict__, "batched": b, "loop": lp, "speedup": speedup, "grad_rel_err": err,
                             "faults_batched": fb, "faults_loop": fl, "range": [lo, hi]}

    if args._json:  # child run: hand the numbers back to the parent
        with open(args._json, "w") as handle:
            json.dump({m: {"batched": v["batched"].samples, "loop": v["loop"].samples, "speedup": v["speedup"],
                           "range": v["range"], "faults": [v["faults_batched"], v["faults_loop"]],
                           "label": StepShape(**v["shape"]).label(), "err": v["grad_rel_err"]}
                       for m, v in data.items()}, handle)
        return
    if "t5-small" in args.shapes and not args.no_malloc_variant:
        child = malloc_variant(args)
        if child:
            c = child["t5-small"]
            table.add(c["label"] + " — glibc malloc without mmap/trim (child process, " + ", ".join(
                f"{k}={v}" for k, v in MALLOC_ENV.items()) + ")", len(c["batched"]),
                fmt_time(statistics.median(c["batched"])), fmt_time(statistics.median(c["loop"])),
                f"**{fmt_ratio(c['speedup'], 2)}**", f"{c['range'][0]:.2f}–{c['range'][1]:.2f}",
                f"{c['faults'][0]:,.0f} / {c['faults'][1]:,.0f}", f"{c['err']:.1e}")
            data["t5-small-malloc-tuned"] = child["t5-small"]
            speedups["t5-small, mmap-free malloc"] = c["speedup"]

    goal = "batched speed-up over the per-particle loop: " + "; ".join(
        f"{m} {s:.2f}×" for m, s in speedups.items()) + " (no numeric goal; batching should not be slower)" + (
        " → batching is faster at every shape." if all(s > 1 for s in speedups.values()) else
        " → batching is NOT faster at every shape.")
    notes = [
        "Both variants call the runner's own `particle_loss_sums` (the loop with M = 1) and `torch.autograd.grad`; "
        "the gradients agree to the relative difference shown (float32 summation order).",
        "On a 2-core CPU the big matrix multiplies of t5-small are already compute-bound at B sequences, so batching "
        "mostly saves per-op dispatch and Python overhead; the gain is largest where ops are small (tiny) and on "
        "a GPU, where M·B sequences fill the device better than B.",
        "Page faults: at t5-small the batched pass's activations (e.g. the feed-forward's 30×256×2048 floats = "
        "63 MB) are above glibc's largest mmap threshold (32 MiB), so every pass maps fresh pages and faults them "
        "in (hundreds of thousands of faults, visible as system time), while the loop's 5× smaller buffers are "
        "recycled from the heap. The child-process row removes that cost (env vars only, no code change) and "
        "shows what batching itself gains on this CPU.",
    ]
    harness.write_report(
        NAME, "3. Batched particles vs a loop over particles",
        what="forward + backward of the LM loss for all M = 5 particles on the same B = 6 examples: one batched "
             "pass over M·B sequences (bmtpt's `particle_loss_sums`) vs M separate passes of B sequences.",
        machine=machine, tables=[table], goal=goal, notes=notes, data=data, quick=args.quick,
        elapsed_s=time.perf_counter() - started, write=not args.no_write, out=args.out,
    )


def malloc_variant(args) -> dict | None:
    """Re-run the t5-small case in a child process with mmap-free glibc malloc; its results, or None."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "child.json")
        cmd = [sys.executable, __file__, "--shapes", "t5-small", "--no-write", "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--source-len", str(args.source_len), "--_json", out]
        if args.quick:
            cmd.append("--quick")
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print("[t5-small again, child process with " + " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()) + "]",
              flush=True)
        rc = subprocess.call(cmd, env={**os.environ, **MALLOC_ENV}, stdout=subprocess.DEVNULL)
        if rc != 0 or not os.path.exists(out):
            print(f"  child failed (exit {rc}); row skipped", flush=True)
            return None
        with open(out) as handle:
            return json.load(handle)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
