#!/usr/bin/env bash
# SPoT's strategies and the transferability indicators on the toy world (docs/toyworld.md, "Transferability
# indicators and SPoT's strategies", issue 23).
#
#   bash scripts/toyworld_spot_study.sh [OUT]                   # OUT defaults to toyworld-spot/
#   SEEDS=20 POSTERIORS="11 12 13" MATRICES="11 12 13" SHOTS=16 TUNE=30 bash scripts/toyworld_spot_study.sh OUT
#
# 1. Per-task prompts of all 16 toy tasks, one `bmtpt source --per-task --seed S` run per posterior seed (300
#    steps each, the posteriors of docs/toyworld.md's comparison).
# 2. `bmtpt transfer-matrix` on the 16 prompts of the runs in MATRICES (default: the first posterior; 17 minutes each
#    with --tune 30): zero-shot transfer, tuned transfer (--tune TUNE steps), every indicator and their correlations
#    with transfer (OUT/matrix-S/correlations.md).
# 3. `bmtpt fewshot` on the four targets with pt, spot, spot-average-3, spot-best-of-3 and spot-oracle, the source
#    prompts being each run's 12 source tasks only (OUT/sources-S links them), crossed with SEEDS seeds.
# One thread per command; a finished step leaves OUT/NAME.done and is skipped on a rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-toyworld-spot}
SEEDS=${SEEDS:-12}
POSTERIORS=${POSTERIORS:-"11 12 13"}
MATRICES=${MATRICES:-${POSTERIORS%% *}}
SHOTS=${SHOTS:-16}
TUNE=${TUNE:-30}
METHODS=${METHODS:-pt,spot,spot-average-3,spot-best-of-3,spot-oracle}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"
source scripts/lib.sh
step() { run "$@"; }

sources=()
for seed in $POSTERIORS; do
  step "prompts-$seed" $BMTPT source --preset toyworld --per-task --tasks "$(join "${SOURCES[@]}" "${TARGETS[@]}")" \
    --steps 300 --warmup-steps 10 --checkpoint-every 300 --seed "$seed" --out "$OUT/prompts-$seed" --force
  mkdir -p "$OUT/sources-$seed"
  for task in "${SOURCES[@]}"; do
    ln -sf "../prompts-$seed/$task.safetensors" "$OUT/sources-$seed/$task.safetensors"
  done
  sources+=("$OUT/sources-$seed")
  [[ " $MATRICES " == *" $seed "* ]] || continue
  step "matrix-$seed" $BMTPT transfer-matrix --preset toyworld --prompts-dir "$OUT/prompts-$seed" --tune "$TUNE" \
    --out "$OUT/matrix-$seed" --force
done
resume=$([[ -s "$OUT/grid/results.jsonl" ]] && echo --resume || true)
step grid $BMTPT fewshot --preset toyworld --tasks "$(join "${TARGETS[@]}")" --shots "$SHOTS" --seeds "$SEEDS" \
  --methods "$METHODS" --source-prompts "$(join "${sources[@]}")" --baseline pt --solved-at 0.9 --out "$OUT/grid" $resume
echo "done: $OUT (matrix-S/correlations.md, grid/table.md)" >&2
