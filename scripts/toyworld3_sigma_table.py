"""The σ sweep of the third toy world as tables: bmtpt at k = 16 with each swept σ (OUT/sigmaS of
scripts/toyworld3_study.sh), beside grid-k16's pt, bmtpt at the preset's σ = 30 and bmtpt-noprior (no prior term),
with the paired difference of each against bmtpt at σ = 30 and against pt (same seed and source posterior; 95% t
interval and bootstrap clustered by posterior, as `bmtpt fewshot` reports them).

    .venv/bin/python scripts/toyworld3_sigma_table.py OUT [SIGMAS]    # SIGMAS: comma-separated, default 3,10,100
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bmtpt_cli.data import toyworld3  # noqa: E402
from bmtpt_cli.experiments.tables import build_table, paired_comparisons, table_markdown  # noqa: E402

PRESET_SIGMA = "30"
SHOTS = 16


def read_rows(path: Path, methods: dict[str, str]) -> list[dict]:
    """The k = 16 rows of `path` whose method is a key of `methods`, renamed to its value."""
    if not path.is_file():
        sys.exit(f"no results at '{path}': run scripts/toyworld3_study.sh first (its σ sweep and grid-k16)")
    rows = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["method"] in methods and row["k"] == SHOTS:
            rows.append({**row, "method": methods[row["method"]]})
    return rows


def main(out: Path, sigmas: list[str]) -> None:
    preset = f"bmtpt σ={PRESET_SIGMA}"
    rows = read_rows(out / "grid-k16" / "results.jsonl", {"pt": "pt", "bmtpt": preset, "bmtpt-noprior": "bmtpt-noprior"})
    for sigma in sigmas:
        rows += read_rows(out / f"sigma{sigma}" / "results.jsonl", {"bmtpt": f"bmtpt σ={sigma}"})
    swept = sorted([*sigmas, PRESET_SIGMA], key=float)
    methods = ["pt", *(f"bmtpt σ={s}" for s in swept), "bmtpt-noprior"]
    sources = {m: len({r.get("source", 0) for r in rows if r["method"] == m}) for m in methods}
    seeds = sorted({r["seed"] for r in rows})
    tasks = [(name, "toyworld3", "accuracy") for name in toyworld3.TARGET_NAMES]
    table = build_table(rows, methods=methods, shots=[SHOTS], tasks=tasks, seeds=seeds, sources=sources, solved_at=0.9)
    notes = [f"seeds {seeds[0]}-{seeds[-1]} × source posteriors ({', '.join(f'{m}: {n}' for m, n in sources.items())}); "
             "pt, the preset's σ and bmtpt-noprior are grid-k16's cells, the other σ their own grids"]
    for baseline in (preset, "pt"):
        print(table_markdown(table, title=f"bmtpt's σ at k = {SHOTS}, against {baseline}", notes=notes,
                             comparisons=paired_comparisons(table, baseline)))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: toyworld3_sigma_table.py OUT [SIGMAS] (OUT: the folder of scripts/toyworld3_study.sh)")
    main(Path(sys.argv[1]), sys.argv[2].split(",") if len(sys.argv) == 3 else ["3", "10", "100"])
