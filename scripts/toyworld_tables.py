"""Print docs/toyworld.md's measurement tables from the output folder of scripts/toyworld_study.sh.

    .venv/bin/python scripts/toyworld_tables.py toyworld-study

Reads only what the study's commands wrote (fewshot `results.jsonl`, the transfer matrix's JSON and
the baselines' log) and prints Markdown: property 2 (prompt tuning on the full data), the prompts'
accuracy on their own task, property 3 (related vs unrelated inits at k = 16, at step 0 and after 10
and 30 steps) and the comparison grid, each cell mean ± sample std over seeds, in accuracy points.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bmtpt_cli.data import toyworld  # noqa: E402

TARGETS = list(toyworld.TARGET_NAMES)
METHODS = ["pt", "multitask", "bmtpt", "bmtpt-noprior", "spot"]


def rows(path: Path) -> list[dict]:
    """The records of one fewshot `results.jsonl`."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def points(values: list[float]) -> str:
    mean, std = mean_std([100 * v for v in values])
    return f"{mean:.1f} ± {std:.1f}"


def zero_shot(out: Path) -> dict[tuple[str, str], float]:
    """{(prompt's task, scored task): test accuracy} from the transfer matrix's JSON record."""
    record = json.loads((out / "transfer" / "zero_shot.json").read_text())
    cells = {}
    for row, values in zip(record["rows"], record["values"]):
        for column, value in zip(record["columns"], values):
            cells[(row, column)] = value
    return cells


def seed_values(path: Path) -> list[float]:
    return [r["value"] for r in sorted(rows(path), key=lambda r: r["seed"])]


def property2(out: Path) -> str:
    by_task: dict[str, list[float]] = {}
    for r in sorted(rows(out / "p2" / "results.jsonl"), key=lambda r: r["seed"]):
        by_task.setdefault(r["task"], []).append(r["value"])
    lines = ["| target | " + " | ".join(f"seed {i}" for i in range(len(next(iter(by_task.values()))))) +
             " | median | ≥ 0.70? |", "|---|" + "---|" * (len(next(iter(by_task.values()))) + 2)]
    for task in TARGETS:
        values = by_task[task]
        median = statistics.median(values)
        lines.append(f"| {task} | " + " | ".join(f"{v:.3f}" for v in values) +
                     f" | **{median:.3f}** | {'yes' if median >= 0.70 else '**no**'} |")
    return "\n".join(lines)


def own_task(out: Path) -> str:
    cells = zero_shot(out)
    lines = ["| prompt (M = 1, 300 steps) | accuracy on its own task (test) |", "|---|---|"]
    for name in [*toyworld.SOURCE_NAMES, *TARGETS]:
        lines.append(f"| {name} ({toyworld.DESIGN[name].role}) | {cells[(name, name)]:.3f} |")
    return "\n".join(lines)


def probe(path: Path) -> list[float]:
    """The per-seed scores of one `evaluate --shots` report."""
    result = json.loads(path.read_text())["results"][0]
    return [result["per_seed"][seed] for seed in sorted(result["per_seed"], key=int)]


def property3(out: Path) -> str:
    cells = zero_shot(out)
    lrs = ("0.3", "0.03")
    lines = ["| target | init | step 0 | 30 steps, lr 0.3 | 30 steps, lr 0.03 |", "|---|---|---|---|---|"]
    summary = {kind: {key: [] for key in ("0", *lrs)} for kind in ("related", "unrelated", "random")}
    for target in TARGETS:
        groups = {"related": toyworld.related_sources(target), "unrelated": toyworld.unrelated_sources(target),
                  "random": ("random",)}
        for kind, inits in groups.items():
            for init in inits:
                after = {lr: probe(out / "p3" / target / f"{init}-lr{lr}.json") for lr in lrs}
                for lr in lrs:
                    summary[kind][lr].append(statistics.fmean(after[lr]))
                step0 = "—"
                if init != "random":
                    summary[kind]["0"].append(cells[(init, target)])
                    step0 = f"{100 * cells[(init, target)]:.1f}"
                lines.append(f"| {target} | {kind}: {init} | {step0} | {points(after['0.3'])} | {points(after['0.03'])} |")
    lines += ["", "| average over the four targets | step 0 | 30 steps, lr 0.3 | 30 steps, lr 0.03 |",
              "|---|---|---|---|"]
    for kind, by_key in summary.items():
        cells_ = [f"{100 * statistics.fmean(by_key[key]):.1f}" if by_key[key] else "—" for key in ("0", *lrs)]
        lines.append(f"| {kind} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def grid(out: Path, prefix: str = "grid") -> str:
    records = [r for part in ("a", "b") for r in rows(out / f"{prefix}-{part}" / "results.jsonl")]
    blocks = []
    for k in sorted({r["k"] for r in records}):
        lines = [f"k = {k}:", "", "| method | " + " | ".join(TARGETS) + " | avg |",
                 "|---|" + "---:|" * (len(TARGETS) + 1)]
        for method in METHODS:
            cell = {(r["task"], r["seed"]): r["value"] for r in records if r["k"] == k and r["method"] == method}
            if not cell:
                continue
            seeds = sorted({seed for _, seed in cell})
            per_task = [points([cell[(t, s)] for s in seeds]) for t in TARGETS]
            averages = [statistics.fmean(cell[(t, s)] for t in TARGETS) for s in seeds]  # per seed, then over seeds
            lines.append(f"| {method} | " + " | ".join(per_task) + f" | **{points(averages)}** |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "toyworld-study")
    sections = [
        ("Property 1 (scripts/toyworld_baselines.py)", lambda: "\n".join(
            line for line in (out / "logs" / "p1.log").read_text().splitlines() if line.startswith("|"))),
        ("Property 2: prompt tuning from random init, full training data", lambda: property2(out)),
        ("Single-task prompts on their own task", lambda: own_task(out)),
        ("Property 3: related vs unrelated init at k = 16 (5 seeds)", lambda: property3(out)),
        ("The comparison (3 seeds), lr 0.3 / 0.4", lambda: grid(out)),
        ("The comparison (3 seeds), lr 0.03 / 0.04", lambda: grid(out, "grid-lr0.03")),
    ]
    for title, make in sections:
        try:
            body = make()
        except (FileNotFoundError, StopIteration, KeyError) as missing:
            body = f"(not measured yet: {missing})"
        print(f"### {title}\n\n{body}\n")


if __name__ == "__main__":
    main()
