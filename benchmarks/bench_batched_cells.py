"""Benchmark 9: few-shot cells adapted together (`adapter.batched.adapt_cells` + `score_cells`) vs one at a time.

One cell is a few-shot cell run alone (what `experiments.fewshot.run_cells` does for one seed): the seed's k-shot subset, a random vocabulary init
drawn from the seed, `adapter.train.adapt` on epochs of the subset with dev selection, then
`score_task` on the test split. A grid runs one (method, k, task) for 40–50 seeds; batched, the N
cells step together (one encoded batch of the N cells' own batches under per-row prompts, one backward,
one AdamW per cell), their dev evaluations and their test scoring in shared passes. Measured: cells per
minute for N cells batched vs the same N cells in a loop of `adapt` + `score_task`, at the toy world's
shape on a CPU with one thread, and where the time goes (phase timers around the shipped functions).
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager

import torch

import harness
from harness import Machine, Table, fmt_ratio

NAME = "09_batched_cells"
TASK = "toy_mood_true"


class Phases:
    """Seconds spent in named functions, by wrapping module attributes for the duration of a run."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def wrapped(self, targets: dict[str, tuple[object, str]]):
        saved = []
        for label, (module, attribute) in targets.items():
            original = getattr(module, attribute)
            saved.append((module, attribute, original))

            def timed(*args, __original=original, __label=label, **kwargs):
                started = time.perf_counter()
                try:
                    return __original(*args, **kwargs)
                finally:
                    self.seconds[__label] = self.seconds.get(__label, 0.0) + time.perf_counter() - started

            setattr(module, attribute, timed)
        try:
            yield self
        finally:
            for module, attribute, original in saved:
                setattr(module, attribute, original)


def build(args):
    """The toy runner, the task's splits and the protocol's config (the demo preset's world)."""
    from bmtpt_cli.data.registry import get_task
    from bmtpt_cli.runner.model import load_frozen_t5
    from bmtpt_cli.runner.runner import FrozenT5Runner
    from bmtpt_cli.settings import build as build_config, defaults
    from bmtpt_cli.adapter.train import AdaptConfig

    model, tokenizer = load_frozen_t5("toy")
    model.to(args.device)
    runner = FrozenT5Runner(model, tokenizer, max_source_length=256, max_target_length=4)  # the demo preset's
    task = get_task(TASK)
    splits = {split: task.examples(split, taskless=True) for split in ("train", "validation", "test")}
    config = build_config(AdaptConfig, defaults("adapt"), steps=args.steps, batch_size=args.batch_size, warmup_steps=3,
                          eval_every=max(1, args.steps // 10), eval_batch_size=32)
    return runner, task, splits, config


def cells_for(runner, task, splits, config, args, seeds):
    """The `pt` method's cells (random vocabulary init from each seed, no prior), as `experiments.fewshot.run_cells` makes them."""
    import dataclasses

    from bmtpt_cli.adapter.batched import CellSpec
    from bmtpt_cli.methods.init import resolve_init
    from bmtpt_cli.data.sampling import kshot

    cells = []
    for seed in seeds:
        subset = kshot(splits["train"], args.shots, seed)
        init = resolve_init("random", runner, prompt_length=args.prompt_length, seed=seed)
        cells.append(CellSpec(task, subset, kshot(splits["validation"], args.dev_shots, seed), init.prompt,
                              init.prior_mean, dataclasses.replace(config, seed=seed)))
    return cells


def run_loop(runner, cells, test):
    """One cell at a time: `adapt` then `score_task`."""
    from bmtpt_cli.adapter.train import adapt
    from bmtpt_cli.data.sampling import EpochBatches
    from bmtpt_cli.scoring.score import score_task

    out = []
    for cell in cells:
        task = cell.task
        result = adapt(runner, [task], {task.name: cell.train}, {task.name: cell.dev}, cell.init, cell.config,
                       prior_mean=cell.prior_mean, batches=EpochBatches(task.name, cell.train, cell.config.batch_size))
        out.append((result, score_task(runner, result.prompts.compose(0).detach(), task, test)))
    return out


def run_batched(runner, cells, test):
    from bmtpt_cli.adapter.batched import adapt_cells, score_cells

    results = adapt_cells(runner, cells)
    scores = score_cells(runner, [r.prompts.compose(0).detach() for r in results], cells[0].task, test)
    return list(zip(results, scores))


def timed(fn, phases_targets):
    phases = Phases()
    with phases.wrapped(phases_targets):
        started = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - started
    return elapsed, phases.seconds, out


def main() -> None:
    parser = harness.base_parser(__doc__.splitlines()[0], repeats=1, warmup=0)
    parser.add_argument("--cells", default="1,8,20,40", help="group sizes N, comma-separated (default 1,8,20,40)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dev-shots", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="where the toy model runs (default cpu; e.g. cuda)")
    parser.add_argument("--test-examples", type=int, default=400, help="test examples scored per cell (default: all 400)")
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 1
    args = harness.finish_args(args)
    if args.quick:
        args.cells, args.steps, args.test_examples = "1,4", 6, 100
    import bmtpt_cli.adapter.batched as batched
    import bmtpt_cli.adapter.train as adapter_train
    import bmtpt_cli.scoring.score as scoring
    from bmtpt_cli.runtime.provenance import cpu_and_threads

    started = time.perf_counter()
    machine = Machine.detect()
    runner, task, splits, config = build(args)
    test = splits["test"][: args.test_examples]
    sizes = [int(n) for n in args.cells.split(",")]
    # warm-up: tokeniser caches and first-call costs for both paths
    warm = cells_for(runner, task, splits, config, args, [1000])
    run_loop(runner, warm, test[:32]), run_batched(runner, warm, test[:32])

    loop_phases = {"dev scoring": (adapter_train, "evaluate_dev"), "test scoring": (scoring, "score_task")}
    batched_phases = {"train steps": (batched, "_step"), "dev scoring": (batched, "_evaluate"),
                      "test scoring": (batched, "score_cells")}
    table = Table(f"Cells per minute, {TASK}: k = {args.shots}, batch {args.batch_size}, {args.steps} steps, dev "
                  f"selection on {args.dev_shots} examples every {config.eval_every} steps, {len(test)} test examples",
                  ["N cells", "rounds", "batched: s per group", "batched cells/min", "loop: s for N cells",
                   "loop cells/min", "speed-up (loop ÷ batched)", "test scores equal", "max |ΔW| batched vs loop"])
    phase_table = Table("Where the time goes (seconds for the N cells; train = all that is not dev or test scoring)",
                        ["N cells", "variant", "train steps", "dev scoring", "test scoring", "total"])
    data = {"settings": {k: getattr(args, k) for k in ("steps", "shots", "batch_size", "dev_shots", "prompt_length",
                                                        "test_examples", "threads")},
            "eval_every": config.eval_every, "cpu_and_threads": cpu_and_threads(), "groups": {}}
    speedups = {}
    for n in sizes:
        cells = cells_for(runner, task, splits, config, args, list(range(n)))
        rounds = []
        for r in range(args.repeats):
            order = ["batched", "loop"] if r % 2 == 0 else ["loop", "batched"]
            got = {}
            for variant in order:
                if variant == "batched":
                    got[variant] = timed(lambda: run_batched(runner, cells, test), batched_phases)
                else:
                    got[variant] = timed(lambda: run_loop(runner, cells, test), loop_phases)
                print(f"[N={n} round {r + 1}] {variant}: {got[variant][0]:.1f} s", flush=True)
            rounds.append(got)
        b = statistics.median(g["batched"][0] for g in rounds)
        lp = statistics.median(g["loop"][0] for g in rounds)
        speedup = statistics.median(g["loop"][0] / g["batched"][0] for g in rounds)
        speedups[n] = speedup
        last = rounds[-1]
        equal = sum(bs.value == ls.value for (_, bs), (_, ls) in zip(last["batched"][2], last["loop"][2]))
        delta = max(float((br.prompts.shared - lr.prompts.shared).detach().abs().max())
                    for (br, _), (lr, _) in zip(last["batched"][2], last["loop"][2]))
        table.add(n, len(rounds), f"{b:.2f}", f"{60 * n / b:.1f}", f"{lp:.2f}", f"{60 * n / lp:.1f}",
                  f"**{fmt_ratio(speedup, 2)}**", f"{equal}/{n}", f"{delta:.1e}")
        for variant in ("batched", "loop"):
            total, phases, _ = last[variant]
            train = total - phases.get("dev scoring", 0.0) - phases.get("test scoring", 0.0)
            phase_table.add(n, variant, f"{train:.2f}", f"{phases.get('dev scoring', 0.0):.2f}",
                            f"{phases.get('test scoring', 0.0):.2f}", f"{total:.2f}")
        data["groups"][str(n)] = {
            "batched_s": [g["batched"][0] for g in rounds], "loop_s": [g["loop"][0] for g in rounds],
            "speedup": speedup, "cells_per_min_batched": 60 * n / b, "cells_per_min_loop": 60 * n / lp,
            "phases_batched": last["batched"][1], "phases_loop": last["loop"][1],
            "test_scores_equal": equal, "max_abs_dW": delta,
            "test_values_batched": [s.value for _, s in last["batched"][2]],
            "test_values_loop": [s.value for _, s in last["loop"][2]],
        }
    top = max(sizes)
    goal = (f"≥ 5× cells per minute at N = 40 batched vs one at a time: got {speedups[top]:.2f}× at N = {top} → "
            + ("met." if speedups[top] >= 5 else "NOT met."))
    notes = [
        "Both variants run the shipped code: the loop calls `adapter.train.adapt` (with `EpochBatches`, as "
        "a cell run alone) and `scoring.score.score_task` per cell; batched calls "
        "`adapter.batched.adapt_cells` and `score_cells` once for the N cells.",
        "Cells: the `pt` method (random vocabulary init drawn from each seed, no prior), seeds 0..N-1, each "
        "with its own k-shot subset and dev examples, the toy world's shape (model 'toy', l = 8, "
        "max_target_length 4, taskless inputs).",
        "'test scores equal' compares each cell's test metric batched vs alone; 'max |ΔW|' the kept shared "
        "prompts. The cells are the same runs up to float32 round-off (tests/adapter/test_batched_cells.py); "
        "on this CPU the one-pass group is bit-identical to the loop.",
        f"Machine (bmtpt provenance): {data['cpu_and_threads']}.",
    ]
    harness.write_report(
        NAME, "9. Few-shot cells batched vs one at a time",
        what=f"cells per minute of N few-shot cells (adapt {args.steps} steps with dev selection, then score the "
             f"test split) run together by `adapt_cells` + `score_cells` vs one at a time (`adapt` + `score_task`), "
             f"device {args.device}, {torch.get_num_threads()} CPU thread(s).",
        machine=machine, tables=[table, phase_table], goal=goal, notes=notes, data=data, quick=args.quick,
        elapsed_s=time.perf_counter() - started, write=not args.no_write, out=args.out,
    )


if __name__ == "__main__":
    main()
