#!/usr/bin/env bash
# Calibration on the toy world (docs/toyworld.md, "Calibration: does the posterior predictive help?"):
# pt, multitask, bmtpt and bmtpt-ensemble from several independent source posteriors × many seeds, at
# k = 16 and 32, each cell's temperature fitted on its own dev examples (--calibrate); tables of
# accuracy, ECE and NLL, unscaled and scaled, each paired against bmtpt.
#
#   bash scripts/toyworld_calibration.sh [OUT]                     # OUT defaults to toyworld-calibration/
#   SEEDS=10 POSTERIORS="11 12" TASKS=toy_mood_true,toy_tool_yes bash scripts/toyworld_calibration.sh OUT
#
# The source posteriors are scripts/toyworld_comparison.sh's (STAGE=sources: `bmtpt source --seed S`,
# M = 5 and M = 1, 300 SVGD steps on the twelve source tasks). One grid per k, run side by side (one
# thread each); a stopped grid resumes cell by cell; then each grid's table is redrawn for every metric
# into OUT/k<K>/table-<metric>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-toyworld-calibration}
SEEDS=${SEEDS:-10}
POSTERIORS=${POSTERIORS:-"11 12"}
TASKS=${TASKS:-toy_mood_true,toy_tool_yes}
SHOTS=${SHOTS:-"16 32"}
METHODS=${METHODS:-pt,multitask,bmtpt,bmtpt-ensemble}
BMTPT=.venv/bin/bmtpt
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
POSTERIORS="$POSTERIORS" STAGE=sources bash scripts/toyworld_comparison.sh "$OUT"
join() { local IFS=,; echo "$*"; }
particles=() multitask=()
for seed in $POSTERIORS; do particles+=("$OUT/p5-$seed.safetensors") multitask+=("$OUT/m1-$seed.safetensors"); done
GRID=(--preset toyworld --methods "$METHODS" --tasks "$TASKS" --seeds "$SEEDS" --particles "$(join "${particles[@]}")"
      --multitask "$(join "${multitask[@]}")" --baseline bmtpt --calibrate)
for k in $SHOTS; do
  resume=$([[ -s "$OUT/k$k/results.jsonl" ]] && echo --resume || true)
  $BMTPT fewshot "${GRID[@]}" --shots "$k" --out "$OUT/k$k" $resume > "$OUT/k$k.log" 2>&1 &
done
wait
for k in $SHOTS; do
  for metric in main ece nll brier ece-scaled nll-scaled brier-scaled; do
    $BMTPT fewshot "${GRID[@]}" --shots "$k" --out "$OUT/k$k" --resume --metric "$metric" > /dev/null 2>&1
    cp "$OUT/k$k/table.md" "$OUT/k$k/table-$metric.md"
  done
done
echo "done: $OUT/k*/table-*.md" >&2
