"""The third toy world's two learning rates side by side: each method's k-shot cells at the preset's rates
(OUT/grid-kK of scripts/toyworld3_study.sh) against its cells at the paper's 0.3 / 0.4 (OUT/grid-paper-lr-kK; both
rates × 1/3 at k = 4), paired at the same seed, source posterior and k-shot sample (95% t interval and bootstrap
clustered by posterior, as `bmtpt fewshot` reports them): what a user gains or loses by tuning at the paper's rates.

    .venv/bin/python scripts/toyworld3_lr_table.py OUT [K]    # K: 4, 16 (the default) or 32
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bmtpt_cli.data import toyworld3  # noqa: E402
from bmtpt_cli.experiments.tables import build_table, paired_comparisons, table_markdown  # noqa: E402

LABELS = {"grid-k": "preset lr", "grid-paper-lr-k": "paper lr"}


def read_rows(out: Path, shots: int) -> list[dict]:
    """Both grids' k-shot rows, each method renamed `METHOD (preset lr)` or `METHOD (paper lr)`."""
    rows = []
    for prefix, label in LABELS.items():
        path = out / f"{prefix}{shots}" / "results.jsonl"
        if not path.is_file():
            sys.exit(f"no results at '{path}': run scripts/toyworld3_study.sh first (its grid-k{shots} and "
                     f"grid-paper-lr-k{shots})")
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["k"] == shots:
                rows.append({**row, "method": f"{row['method']} ({label})"})
    return rows


def main(out: Path, shots: int = 16) -> None:
    """Print, per method, its cells at the paper's rates paired with its cells at the preset's (k = shots)."""
    rows = read_rows(out, shots)
    tasks = [(name, "toyworld3", "accuracy") for name in toyworld3.TARGET_NAMES]
    seeds = sorted({r["seed"] for r in rows})
    for method in dict.fromkeys(r["method"].split(" (")[0] for r in rows):
        methods = [f"{method} ({label})" for label in LABELS.values()]
        mine = [r for r in rows if r["method"] in methods]
        sources = {m: len({r.get("source", 0) for r in mine if r["method"] == m}) for m in methods}
        table = build_table(mine, methods=methods, shots=[shots], tasks=tasks, seeds=seeds, sources=sources,
                            solved_at=0.9)
        scale = " × 1/3 at k = 4" if shots == 4 else ""
        notes = [f"seeds {seeds[0]}-{seeds[-1]} × {sources[methods[0]]} source posterior(s); preset lr: grid-k{shots} "
                 f"(0.03 / 0.04{scale}), paper lr: grid-paper-lr-k{shots} (0.3 / 0.4{scale})"]
        print(table_markdown(table, title=f"{method} at k = {shots}: the paper's learning rates against the preset's",
                             notes=notes, comparisons=paired_comparisons(table, methods[0])))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and not sys.argv[2].isdigit()):
        sys.exit("usage: toyworld3_lr_table.py OUT [K] (OUT: the folder of scripts/toyworld3_study.sh; K: the shots)")
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 16)
