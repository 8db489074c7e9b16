"""Benchmark 6: data parallelism — 2 gloo processes (torchrun) against 1 process, same global batch.

Runs the real CLI (`bmtpt source` on the demo preset, tiny model, M = 5, 12 examples a step) once
in one process and once under `torchrun --standalone --nproc_per_node 2`, each for N and 2N steps:
the time per step is (T(2N) − T(N)) / N, which cancels start-up and model loading. Reports the
throughput ratio and how far the two runs' particles are apart after 2N steps (float32 round-off
expected: the same sums added in another order).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import harness
from harness import Machine, Table, fmt_time

NAME = "06_data_parallel"


def run(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=1)
    parser.add_argument("--steps", type=int, default=30, help="N: the runs take N and 2N steps")
    args = harness.finish_args(parser.parse_args())
    steps = 8 if args.quick else args.steps
    machine = Machine.detect()
    base = ["source", "--particles", "5", "--examples-per-task", "4", "--warmup-steps", "1", "--device", "cpu", "--force"]
    launchers = {
        "1 process": [sys.executable, "-m", "bmtpt_cli"],
        "2 processes (gloo)": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               "-m", "bmtpt_cli"],
    }
    started = time.perf_counter()
    per_step, particles = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, launcher in launchers.items():
            times = {}
            for n in (steps, 2 * steps):
                out = Path(tmp) / f"{label.split()[0]}-{n}.safetensors"
                times[n] = run([*launcher, *base, "--steps", str(n), "--out", str(out)], Path(tmp))
            per_step[label] = (times[2 * steps] - times[steps]) / steps
            from safetensors.torch import load_file

            particles[label] = load_file(Path(tmp) / f"{label.split()[0]}-{2 * steps}.safetensors")["particles"]
    one, two = per_step["1 process"], per_step["2 processes (gloo)"]
    difference = (particles["1 process"] - particles["2 processes (gloo)"]).abs().max().item()
    scale = particles["1 process"].abs().max().item()
    table = Table("Data parallelism on CPU, tiny model, M = 5, global batch 12", ["run", "time per step", "throughput vs 1 process"])
    table.add("1 process (2 torch threads)", fmt_time(one), "1.00×")
    table.add("2 processes × 1 thread (torchrun, gloo)", fmt_time(two), f"{one / two:.2f}×")
    agreement = Table(f"Particles after {2 * steps} steps", ["max |Δθ|", "max |θ|", "relative"])
    agreement.add(f"{difference:.3g}", f"{scale:.3g}", f"{difference / scale:.2g}")
    harness.write_report(
        NAME,
        "6. Data parallelism: 2 gloo processes vs 1 process",
        what=__doc__.split("\n\n")[1].replace("\n", " "),
        machine=machine,
        tables=[table, agreement],
        goal=(f"particles agree {'to float32 round-off' if difference / scale < 1e-4 else 'only loosely'} "
              f"(relative {difference / scale:.1g}); 2 processes give {one / two:.2f}× the throughput of 1 "
              + ("" if one / two >= 1 else "— on this 2-core machine one process already uses both cores through "
                 "its threads, so a second process adds only gloo traffic; the speed-up comes with one GPU per process")),
        data={"per_step_s": per_step, "max_abs_diff": difference, "steps": steps},
        quick=args.quick,
        elapsed_s=time.perf_counter() - started,
        write=not args.no_write,
        out=args.out,
    )


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
