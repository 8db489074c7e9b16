"""Probe for benchmark 1: what small work costs right after a backward pass, against the same work warm.

At the tiny shape a source step's fixed work (tokenising, the reduce, the SVGD update, AdamW, the
checks and the record) costs ~0.3 ms when looped on its own but ~1.2 ms inside the step: the
forward and backward evict the CPU's caches, so the first run of every piece of code after them is
slow. This probe shows it on single operations, and splits `AdamW.step` (the largest piece) into the
optimizer's wrapper, its Python and its fused kernel, each timed in the same place: right after a
real backward of the tiny model. Prints a markdown table; nothing is written.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/probe_cold_after_backward.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import harness  # noqa: F401  (offline environment and the repository on sys.path)
import torch
from torch.optim.adam import adam as functional_adam
from workloads import SourceStep, StepShape, build_runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="backward passes per variant (default 200)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runner = build_runner("tiny")
    step = SourceStep.for_shape(runner, StepShape("tiny", 8, 5, 6, 64, 4))
    particles, batch, optimizer = step.particles, step.batch, step.state.optimizer
    step()  # one real step: the optimizer has its state
    group, state = optimizer.param_groups[0], optimizer.state[particles]
    hyper = dict(lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"], beta1=group["betas"][0],
                 beta2=group["betas"][1], amsgrad=False, maximize=False)
    x = torch.randn(5, 512)

    def run_adam(how: str) -> None:
        if how == "AdamW.step (torch.optim, fused)":
            optimizer.step()
        elif how == "AdamW.step without its wrapper (profiler range, hooks)":
            type(optimizer).step.__wrapped__(optimizer)
        elif how == "torch.optim.adam.adam, the functional AdamW (fused)":
            functional_adam([particles], [particles.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [],
                            [state["step"]], fused=True, decoupled_weight_decay=True, **hyper)
        else:  # the fused kernel alone
            torch._fused_adamw_([particles], [particles.grad], [state["exp_avg"]], [state["exp_avg_sq"]], [],
                                [state["step"]], **hyper)

    probes = {
        "x + 1 (first op)": lambda: x + 1, "x + 1 again": lambda: x + 1, "torch.exp(x)": lambda: torch.exp(x),
        "torch.exp(x) again": lambda: torch.exp(x), "x @ x.T": lambda: x @ x.T, "x @ x.T again": lambda: x @ x.T,
        "[round(v, 3) for v in range(5)]": lambda: [round(v, 3) for v in range(5)],
    }
    adam_variants = ["AdamW.step (torch.optim, fused)", "AdamW.step without its wrapper (profiler range, hooks)",
                     "torch.optim.adam.adam, the functional AdamW (fused)", "torch._fused_adamw_ (the kernel alone)"]
    cold = {name: [] for name in [*probes, *adam_variants]}
    warm = {name: [] for name in cold}
    for i in range(args.steps):
        sums = runner.particle_loss_sums(particles, batch)
        (grad,) = torch.autograd.grad(sums.sum(), particles)
        particles.grad = grad * 1e-3
        if i % 2 == 0:  # the single-op probes, in order, right after the backward
            for name, fn in probes.items():
                started = time.perf_counter()
                fn()
                cold[name].append(time.perf_counter() - started)
        else:  # one AdamW variant per backward, round-robin, right after it; then the same again warm
            how = adam_variants[(i // 2) % len(adam_variants)]
            for into in (cold, warm):
                started = time.perf_counter()
                run_adam(how)
                into[how].append(time.perf_counter() - started)
        for name, fn in probes.items():  # warm: the same op, looped
            fn()
            started = time.perf_counter()
            fn()
            warm[name].append(time.perf_counter() - started)
        particles.grad = None

    print(f"| what (tiny model, {torch.get_num_threads()} thread(s), {args.steps} backward passes) "
          "| right after a backward (median) | repeated at once (median) | ratio |")
    print("|---|---|---|---|")
    for name in cold:
        c, w = statistics.median(cold[name]), statistics.median(warm[name])
        print(f"| {name} | {c * 1e6:.1f} µs | {w * 1e6:.1f} µs | {c / w:.1f}× |")


if __name__ == "__main__":
    main()
