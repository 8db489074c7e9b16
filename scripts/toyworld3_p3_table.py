"""Property 3 of the third toy world as a table: k = 16 from each related source's prompt, the unrelated one and
random (OUT/p3/<target>/<init>.json of scripts/toyworld3_study.sh), with the paired difference related − unrelated
over the seeds (95% t interval).

    .venv/bin/python scripts/toyworld3_p3_table.py OUT
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bmtpt_cli.data import toyworld3  # noqa: E402
from bmtpt_cli.experiments.paired import t_interval  # noqa: E402


def per_seed(path: Path) -> dict[str, float]:
    """Each seed's test accuracy in one `bmtpt evaluate --shots` report."""
    (row,) = json.loads(path.read_text())["results"]
    return row["per_seed"]


def cell(values: list[float]) -> str:
    return f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def main(out: Path) -> None:
    print("| target | init | k = 16 (mean ± std over seeds) | − unrelated, paired (95% t) |")
    print("|---|---|---:|---:|")
    for target in toyworld3.TARGET_NAMES:
        (unrelated,) = toyworld3.unrelated_sources(target)
        inits = [*toyworld3.related_sources(target), unrelated, "random"]
        scores = {init: per_seed(out / "p3" / target / f"{init}.json") for init in inits}
        seeds = sorted(scores[unrelated], key=int)
        for init in inits:
            role = "unrelated" if init == unrelated else "random" if init == "random" else "related"
            values = [scores[init][s] for s in seeds]
            gap = ""
            if init != unrelated:
                interval = t_interval([scores[init][s] - scores[unrelated][s] for s in seeds])
                mean = statistics.fmean(scores[init][s] - scores[unrelated][s] for s in seeds)
                gap = f"{100 * mean:+.1f} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"
            name = "random" if init == "random" else f"`{init}` ({role})"
            print(f"| `{target}` | {name} | {cell(values)} | {gap} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: toyworld3_p3_table.py OUT (the folder of scripts/toyworld3_study.sh)")
    main(Path(sys.argv[1]))
