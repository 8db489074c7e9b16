#!/usr/bin/env bash
# ATTEMPT against prompt tuning on the toy world (docs/toyworld.md, "ATTEMPT on the toy world"):
# per-task source prompts from several independent source runs, each crossed with many seeds.
#
#   bash scripts/toyworld_attempt.sh [OUT]                       # OUT defaults to toyworld-attempt/
#   SEEDS=20 POSTERIORS="11 12 13" SHOTS=16 bash scripts/toyworld_attempt.sh OUT
#
# Each source run is `bmtpt source --preset toyworld --per-task --seed S` (one prompt per source task of
# the preset); `fewshot` pairs attempt (from each run's prompts) with pt at every seed and clusters its
# bootstrap intervals by source run. One thread; a finished step leaves OUT/NAME.done and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-toyworld-attempt}
SEEDS=${SEEDS:-20}
POSTERIORS=${POSTERIORS:-"11 12 13"}
SHOTS=${SHOTS:-16}
TASKS=${TASKS:-toy_mood_true,toy_tool_yes}
BMTPT=.venv/bin/bmtpt
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"
sources=()
for seed in $POSTERIORS; do
  if [[ ! -e "$OUT/src$seed.done" ]]; then
    $BMTPT source --preset toyworld --per-task --seed "$seed" --out "$OUT/src$seed" --force > "$OUT/src$seed.log" 2>&1
    touch "$OUT/src$seed.done"
  fi
  sources+=("$OUT/src$seed")
done
resume=$([[ -s "$OUT/grid/results.jsonl" ]] && echo --resume || true)
$BMTPT fewshot --preset toyworld --methods pt,attempt --source-prompts "$(IFS=,; echo "${sources[*]}")" \
  --shots "$SHOTS" --seeds "$SEEDS" --tasks "$TASKS" --out "$OUT/grid" $resume
