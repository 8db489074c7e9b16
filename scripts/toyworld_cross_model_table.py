"""Print the cross-model tables of docs/toyworld.md from the output folder of scripts/toyworld_cross_model.sh.

    .venv/bin/python scripts/toyworld_cross_model_table.py toyworld-cross-model

Zero-shot: each target's prompt on `toy` and its projection on `toy-wide` (test split, per source run S).
Tuned at k shots on `toy-wide`: random init (pt) and the projected prompt (from-prompts), mean ± std over the
cells, and the paired difference projected − pt per (source run, seed) with its 95% t interval and the bootstrap
clustered by source run (`bmtpt_cli.experiments.paired`), per target and on the four-target average.
The same for Su et al.'s protocol (a projector trained on the target's two related sources only), with its control:
those sources' own projected prompts scored on the target.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bmtpt_cli.data import toyworld  # noqa: E402
from bmtpt_cli.experiments.paired import compare_paired  # noqa: E402

TARGETS = list(toyworld.TARGET_NAMES)


def value(path: Path) -> float:
    """The score of a plain `bmtpt evaluate` report (one task)."""
    (result,) = json.loads(path.read_text())["results"]
    return result["value"]


def per_seed(path: Path) -> dict[int, float]:
    """{seed: score} of one `bmtpt evaluate --shots` report (one task)."""
    (result,) = json.loads(path.read_text())["results"]
    return {int(seed): score for seed, score in result["per_seed"].items()}


def points(values: list[float]) -> str:
    values = [100 * v for v in values]
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.1f}"


def interval(differences: list[float], clusters: list[int]) -> str:
    found = compare_paired("projected", "pt", [100 * d for d in differences], clusters)
    t, boot = found.t, found.bootstrap
    mark = " ✓" if found.separated else ""
    return f"{found.mean:+.1f} [{t.low:+.1f}, {t.high:+.1f}] [{boot.low:+.1f}, {boot.high:+.1f}]{mark}"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "toyworld-cross-model")
    runs = sorted(int(m.group(1)) for p in out.glob("projector-*.done") if (m := re.fullmatch(r"projector-(\d+)\.done", p.name)))
    print(f"source runs: {runs}\n")
    print("## Zero-shot (test split, accuracy × 100)\n")
    print("| target | " + " | ".join(f"toy, S={s} | toy-wide projected, S={s}" for s in runs) + " |")
    print("|---|" + "---:|---:|" * len(runs))
    for task in TARGETS:
        cells = [f"{100 * value(out / f'zero-{kind}-{s}-{task}.json'):.1f}" for s in runs for kind in ("toy", "wide")]
        print(f"| {task} | " + " | ".join(cells) + " |")
    wide = [value(out / f"zero-wide-{s}-{task}.json") for s in runs for task in TARGETS]
    toy = [value(out / f"zero-toy-{s}-{task}.json") for s in runs for task in TARGETS]
    print(f"| mean | toy {points(toy)} | toy-wide projected {points(wide)} |\n")

    pt = {task: per_seed(out / f"pt-{task}.json") for task in TARGETS}
    tuned = {(s, task): per_seed(out / f"tuned-{s}-{task}.json") for s in runs for task in TARGETS}
    seeds = sorted(pt[TARGETS[0]])
    shots = json.loads((out / f"pt-{TARGETS[0]}.json").read_text())["results"][0].get("shots", "k")
    print(f"## Tuned on toy-wide, {shots} shots ({len(seeds)} seeds; the projected rows × {len(runs)} source runs)\n")
    print("| | " + " | ".join(TARGETS) + " | avg |")
    print("|---|" + "---:|" * (len(TARGETS) + 1))
    average = lambda table, s=None: [statistics.fmean(table[task if s is None else (s, task)][seed] for task in TARGETS) for seed in seeds]
    print("| pt | " + " | ".join(points(list(pt[t].values())) for t in TARGETS) + f" | {points(average(pt))} |")
    print("| projected | " + " | ".join(points([tuned[(s, t)][seed] for s in runs for seed in seeds]) for t in TARGETS)
          + f" | {points([v for s in runs for v in average(tuned, s)])} |")
    clusters = [s for s in runs for _ in seeds]
    cells = []
    for task in TARGETS:
        cells.append(interval([tuned[(s, task)][seed] - pt[task][seed] for s in runs for seed in seeds], clusters))
    pt_average = average(pt)
    cells.append(interval([v - pt_average[i] for s in runs for i, v in enumerate(average(tuned, s))], clusters))
    print("| **projected − pt** | " + " | ".join(cells) + " |\n")
    print("Differences in points: mean [95% t over the pairs] [bootstrap clustered by source run]; ✓ both exclude 0.\n")
    similar(out, pt, seeds)


def similar(out: Path, pt: dict, seeds: list[int]) -> None:
    """Su et al.'s protocol: a projector per target trained on its related sources only."""
    runs = sorted({int(m.group(1)) for p in out.glob("tuned-similar-*.done")
                   if (m := re.fullmatch(r"tuned-similar-(\d+)-.+\.done", p.name))})
    if not runs:
        return
    print(f"## A projector trained on the target's related sources only (source runs {runs})\n")
    print("| target | its projection, zero-shot | the related sources' own projections on it | tuned from it | pt | − pt |")
    print("|---|---:|---:|---:|---:|---:|")
    averaged: dict[tuple[int, int], list[float]] = {}  # (source run, seed) → each target's difference
    tuned_average: dict[tuple[int, int], list[float]] = {}
    for task in TARGETS:
        own, control, tuned, differences, clusters = [], [], [], [], []
        for s in runs:
            cells = json.loads((out / f"zero-similar-{s}-{task}" / "zero_shot.json").read_text())["all_metrics"]
            for pair, metrics in cells.items():
                (own if pair.split(" -> ")[0] == task else control).append(metrics["accuracy"])
            scores = per_seed(out / f"tuned-similar-{s}-{task}.json")
            tuned += [scores[seed] for seed in seeds]
            differences += [scores[seed] - pt[task][seed] for seed in seeds]
            clusters += [s] * len(seeds)
            for seed in seeds:
                averaged.setdefault((s, seed), []).append(scores[seed] - pt[task][seed])
                tuned_average.setdefault((s, seed), []).append(scores[seed])
        print(f"| {task} | {', '.join(f'{100 * v:.1f}' for v in own)} | {', '.join(f'{100 * v:.1f}' for v in control)} | "
              f"{points(tuned)} | {points(list(pt[task].values()))} | {interval(differences, clusters)} |")
    pairs = sorted(averaged)
    pt_average = [statistics.fmean(pt[task][seed] for task in TARGETS) for seed in seeds]
    print(f"| avg | | | {points([statistics.fmean(tuned_average[pair]) for pair in pairs])} | {points(pt_average)} | "
          f"{interval([statistics.fmean(averaged[pair]) for pair in pairs], [pair[0] for pair in pairs])} |")
    print()


if __name__ == "__main__":
    main()
