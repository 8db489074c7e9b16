"""The transferability indicators' Spearman ρ with transfer over several source runs, as one Markdown table.

    .venv/bin/python scripts/indicator_runs_table.py OUT/matrix-11 OUT/matrix-12 OUT/matrix-13

Reads each `bmtpt transfer-matrix` folder's `correlations.json` and prints, per indicator, ρ (all pairs) with the
zero-shot transfer and with the tuned transfer in each run and their mean, ranked by the mean zero-shot ρ. Each run's
matrix has its own prompts (another `source --per-task --seed`), so the runs are independent replicates of the
ranking; within a run the pairs share prompts and are not.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TRANSFERS = ("zero_shot_relative", "error_reduction")


def rho_by_indicator(folder: Path, transfer: str) -> dict[str, float]:
    """{indicator: Spearman ρ over all pairs} of one run's `correlations.json`."""
    rows = json.loads((folder / "correlations.json").read_text())["transfers"][transfer]
    return {row["indicator"]: row["all_pairs"]["spearman_rho"] for row in rows}


def main() -> None:
    folders = [Path(arg) for arg in sys.argv[1:]]
    if not folders:
        sys.exit("give one or more transfer-matrix folders (each with correlations.json)")
    runs = {transfer: [rho_by_indicator(folder, transfer) for folder in folders] for transfer in TRANSFERS}
    indicators = sorted(runs[TRANSFERS[0]][0], key=lambda name: -statistics.fmean(run[name] for run in runs[TRANSFERS[0]]))
    names = [folder.name for folder in folders]
    print("| indicator | " + " | ".join(f"ρ zero-shot, {n}" for n in names) + " | **mean** | "
          + " | ".join(f"ρ tuned, {n}" for n in names) + " | **mean** |")
    print("|---|" + "---:|" * (2 * len(names) + 2))
    for name in indicators:
        cells = []
        for transfer in TRANSFERS:
            values = [run[name] for run in runs[transfer]]
            cells += [f"{v:+.2f}" for v in values] + [f"**{statistics.fmean(values):+.2f}**"]
        print(f"| `{name}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
