"""The third toy world's comparison grids as docs/toyworld.md shows them: one table per grid of
scripts/toyworld3_study.sh (OUT/grid-k4, grid-k16, grid-k32 and grid-paper-lr-k4, -k16, -k32, those that exist),
each method's mean ± std per target and on the average with its share of cells ≥ 0.9, then the paired differences
of every method against pt and of bmtpt against every other method (same seed and source posterior), each with its
95% bootstrap interval clustered by source posterior; ✓ marks a difference whose t and bootstrap intervals both
exclude 0, as `bmtpt fewshot`'s own table (OUT/grid-*/table.md, which also shows the t intervals). Then, per grid,
how often SPoT's retrieval picked a related source prompt and what its cells scored either way.

    .venv/bin/python scripts/toyworld3_tables.py OUT [GRID ...]    # GRID: other grid folders of OUT to show
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bmtpt_cli.data import toyworld3  # noqa: E402
from bmtpt_cli.experiments.tables import AVERAGE, build_table, paired_comparisons  # noqa: E402

ORDER = ["pt", "multitask", "bmtpt", "bmtpt-noprior", "spot", "attempt"]
GRIDS = {"grid-k4": "k = 4", "grid-k16": "k = 16", "grid-k32": "k = 32", "grid-paper-lr-k4": "k = 4, lr 0.1 / 0.133",
         "grid-paper-lr-k16": "k = 16, lr 0.3 / 0.4", "grid-paper-lr-k32": "k = 32, lr 0.3 / 0.4"}


def short(task: str) -> str:
    return task.removeprefix("toy3_")


def points(values: list[float]) -> str:
    """The mean of metric values in points (one decimal), `–` for none."""
    return f"{100 * sum(values) / len(values):.1f}" if values else "–"


def interval(comparison: dict) -> str:
    """`+20.2 [+17.9, +22.4]` (bootstrap clustered by posterior), ✓ when both intervals exclude 0."""
    boot = comparison["bootstrap"]
    text = f"{comparison['mean']:+.1f} [{boot['low']:+.1f}, {boot['high']:+.1f}]".replace("-", "−")
    return text + (" ✓" if comparison["separated"] else "")


def grid_table(path: Path, label: str) -> str:
    """The condensed table of one grid's results.jsonl."""
    rows = [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]
    methods = [m for m in ORDER if any(r["method"] == m for r in rows)]
    sources = {m: len({r.get("source", 0) for r in rows if r["method"] == m}) for m in methods}
    seeds = sorted({r["seed"] for r in rows})
    (k,) = {r["k"] for r in rows}
    label = label or f"k = {k}"
    tasks = [(name, "toyworld3", "accuracy") for name in toyworld3.TARGET_NAMES]
    table = build_table(rows, methods=methods, shots=[k], tasks=tasks, seeds=seeds, sources=sources, solved_at=0.9)
    names = [column["name"] for column in table["columns"]]
    (block,) = table["blocks"]
    header = "| " + label + " | " + " | ".join(f"`{short(n)}`" if n != AVERAGE else n for n in names) + " | cells ≥ 0.9 |"
    lines = [f"{path.name}: seeds {seeds[0]}-{seeds[-1]}", "", header, "|---|" + "---:|" * (len(names) + 1)]
    for row in block["rows"]:
        cells = [row["cells"][n] for n in names]
        count = f"{row['sources']} × {len(seeds)}" if row["sources"] > 1 else f"{len(seeds)} cells"
        lines.append(f"| {row['method']} ({count}) | " + " | ".join(f"{c['mean']:.1f} ± {c['std']:.1f}" for c in cells)
                     + f" | {100 * row['cells'][AVERAGE]['solved']:.0f}% |")
    pairs = [(m, "pt") for m in methods if m != "pt"] + [("bmtpt", m) for m in methods if m not in ("pt", "bmtpt")]
    comparisons = {baseline: paired_comparisons(table, baseline) for _, baseline in pairs}  # each baseline once
    for method, baseline in pairs:
        if "bmtpt" not in methods and baseline != "pt":
            continue
        found = {c["column"]: c for c in comparisons[baseline] if c["method"] == method}
        if found:
            lines.append(f"| **{method} − {baseline}** | " + " | ".join(
                f"**{interval(found[n])}**" if n == AVERAGE else interval(found[n]) for n in names) + " | |")
    return "\n".join(lines)


def spot_retrieval(path: Path) -> str:
    """How often SPoT's retrieval picked a related source (the target's operation and field) per target, and the
    cells' mean score when it did and when it did not."""
    rows = [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["method"] == "spot"]
    if not rows:
        return ""
    lines = [f"{path.name}: spot's retrieved source", "", "| target | related source retrieved | its cells | other cells |",
             "|---|---:|---:|---:|"]
    for target in toyworld3.TARGET_NAMES:
        related = set(toyworld3.related_sources(target))
        mine = [r for r in rows if r["task"] == target]
        hits = [r["value"] for r in mine if r["init_details"]["chosen"] in related]
        misses = [r["value"] for r in mine if r["init_details"]["chosen"] not in related]
        lines.append(f"| `{short(target)}` | {len(hits)} / {len(mine)} | {points(hits)} | {points(misses)} |")
    return "\n".join(lines)


def main(out: Path, names: list[str]) -> None:
    grids = {name: GRIDS.get(name, "") for name in names} if names else GRIDS
    shown = [grid_table(out / name, label) for name, label in grids.items() if (out / name / "results.jsonl").is_file()]
    if not shown:
        sys.exit(f"no merged grid in '{out}' (grid-k16/results.jsonl, …): run scripts/toyworld3_study.sh first")
    retrieval = [spot_retrieval(out / name) for name in (names or GRIDS) if (out / name / "results.jsonl").is_file()]
    print("\n\n".join(shown + [table for table in retrieval if table]))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: toyworld3_tables.py OUT [GRID ...] (OUT: the folder of scripts/toyworld3_study.sh)")
    main(Path(sys.argv[1]), sys.argv[2:])
