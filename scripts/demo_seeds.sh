#!/usr/bin/env bash
# The README's first command (the demo chain) at several seeds: one JSON line per seed with both targets'
# test accuracy, so the README can state the figures as a distribution (issue 26, item 1).
#   bash scripts/demo_seeds.sh 0 9 > demo_seeds.jsonl
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bmtpt="$root/.venv/bin/bmtpt"
for seed in $(seq "${1:-0}" "${2:-9}"); do
  work="$(mktemp -d)"
  (
    cd "$work"
    unset BMTPT_PRESET
    start=$(date +%s.%N)
    "$bmtpt" source --seed "$seed" --threads 1 >/dev/null 2>&1
    "$bmtpt" adapt --seed "$seed" --threads 1 >/dev/null 2>&1
    "$bmtpt" evaluate --threads 1 >/dev/null 2>&1
    end=$(date +%s.%N)
    "$root/.venv/bin/python" - "$seed" "$start" "$end" <<'PY'
import json, sys
seed, start, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
rows = json.load(open("results.json"))["results"]
print(json.dumps({"seed": seed, "seconds": round(end - start, 1), **{r["task"]: r["value"] for r in rows}}), flush=True)
PY
  )
  rm -rf "$work"
done
