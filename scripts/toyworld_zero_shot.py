"""Zero-shot scores of source posteriors: each particles file's mean prompt (and, with --particles,
each particle) scored as it is on tasks' test splits, rank scoring, taskless inputs (docs/toyworld.md,
property 4: does a prompt trained on all sources hold their operations?).

    .venv/bin/python scripts/toyworld_zero_shot.py FILE [FILE ...] [--model toy] [--tasks a,b] [--particles]
    .venv/bin/python scripts/toyworld_zero_shot.py FILE --model toy3 --world toyworld3   # the third world's sources

Prints one Markdown row per file (and particle): its score on each task, the mean over the tasks
and how many of them are above 0.6; `--json OUT` also writes every score.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bmtpt_cli.artifacts.native import load_particles  # noqa: E402
from bmtpt_cli.data import toyworld, toyworld3  # noqa: E402
from bmtpt_cli.data.registry import TASKS  # noqa: E402
from bmtpt_cli.scoring.score import score_task  # noqa: E402
from bmtpt_cli.runner.model import load_frozen_t5  # noqa: E402
from bmtpt_cli.runner.runner import FrozenT5Runner  # noqa: E402

ABOVE = 0.6  # "well above chance" on a balanced 400-example test split (chance 0.5, its std 0.025)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", default="toy")
    parser.add_argument("--world", choices=("toyworld", "toyworld3"), default="toyworld",
                        help="whose sources --tasks defaults to")
    parser.add_argument("--tasks", default=None, help="default: the world's sources")
    parser.add_argument("--particles", action="store_true", help="also score each particle on its own")
    parser.add_argument("--json", type=Path, help="write every score here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    model, tokenizer = load_frozen_t5(args.model)
    runner = FrozenT5Runner(model, tokenizer, max_source_length=256, max_target_length=4)
    world = toyworld3 if args.world == "toyworld3" else toyworld
    tasks = [TASKS[name] for name in (args.tasks or ",".join(world.SOURCE_NAMES)).split(",")]
    examples = {task.name: task.examples("test", taskless=True) for task in tasks}
    short = [task.name.removeprefix("toy_").removeprefix("toy3_") for task in tasks]
    print(f"| prompt | {' | '.join(short)} | mean | above {ABOVE} |")
    print("|---|" + "---:|" * (len(tasks) + 2))
    results = []
    for path in args.files:
        particles, _ = load_particles(path)
        prompts = [("mean", particles.mean(0))]
        if args.particles and particles.shape[0] > 1:
            prompts += [(f"particle {i}", p) for i, p in enumerate(particles)]
        for label, prompt in prompts:
            scores = {task.name: score_task(runner, prompt, task, examples[task.name]).value for task in tasks}
            values = list(scores.values())
            above = sum(v > ABOVE for v in values)
            print(f"| {path.name} {label} | " + " | ".join(f"{v:.3f}" for v in values)
                  + f" | {statistics.fmean(values):.3f} | {above}/{len(values)} |", flush=True)
            results.append({"file": str(path), "prompt": label, "scores": scores})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
