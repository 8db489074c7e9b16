"""The third toy world's two learning rates side by side: each method's k = 16 cells at the preset's rates
(OUT/grid-k16 of scripts/toyworld3_study.sh) against its cells at the paper's 0.3 / 0.4 (OUT/grid-paper-lr), paired
at the same seed, source posterior and k-shot sample (95% t interval and bootstrap clustered by posterior, as
`bmtpt fewshot` reports them): what a user gains or loses by tuning at the paper's rates.

    .venv/bin/python scripts/toyworld3_lr_table.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bmtpt_cli.data import toyworld3  # noqa: E402
from bmtpt_cli.experiments.tables import build_table, paired_comparisons, table_markdown  # noqa: E402

SHOTS = 16
GRIDS = {"grid-k16": "preset lr", "grid-paper-lr": "paper lr"}


def read_rows(out: Path) -> list[dict]:
    """Both grids' k = 16 rows, each method renamed `METHOD (preset lr)` or `METHOD (paper lr)`."""
    rows = []
    for grid, label in GRIDS.items():
        path = out / grid / "results.jsonl"
        if not path.is_file():
            sys.exit(f"no results at '{path}': run scripts/toyworld3_study.sh first (its grid-k16 and grid-paper-lr)")
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["k"] == SHOTS:
                rows.append({**row, "method": f"{row['method']} ({label})"})
    return rows


def main(out: Path) -> None:
    rows = read_rows(out)
    tasks = [(name, "toyworld3", "accuracy") for name in toyworld3.TARGET_NAMES]
    seeds = sorted({r["seed"] for r in rows})
    for method in dict.fromkeys(r["method"].split(" (")[0] for r in rows):
        methods = [f"{method} ({label})" for label in GRIDS.values()]
        mine = [r for r in rows if r["method"] in methods]
        sources = {m: len({r.get("source", 0) for r in mine if r["method"] == m}) for m in methods}
        table = build_table(mine, methods=methods, shots=[SHOTS], tasks=tasks, seeds=seeds, sources=sources,
                            solved_at=0.9)
        notes = [f"seeds {seeds[0]}-{seeds[-1]} × {sources[methods[0]]} source posterior(s); preset lr: grid-k16 "
                 "(0.03 / 0.04), paper lr: grid-paper-lr (0.3 / 0.4)"]
        print(table_markdown(table, title=f"{method} at k = {SHOTS}: the paper's learning rates against the preset's",
                             notes=notes, comparisons=paired_comparisons(table, methods[0])))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: toyworld3_lr_table.py OUT (OUT: the folder of scripts/toyworld3_study.sh)")
    main(Path(sys.argv[1]))
