#!/usr/bin/env bash
# The statistics-first comparison of docs/toyworld.md ("Does Bayesian transfer help?"): every method
# from several independent source posteriors, crossed with many seeds, paired against pt.
#
#   bash scripts/toyworld_comparison.sh [OUT]               # OUT defaults to toyworld-comparison/
#   SEEDS=40 POSTERIORS="11 12 13" SHOTS=16 bash scripts/toyworld_comparison.sh OUT
#   STAGE=sources bash scripts/toyworld_comparison.sh OUT   # only the source posteriors (STAGE=grid: and the main grid)
#   METHODS=pt,multitask,bmtpt bash scripts/toyworld_comparison.sh OUT      # the main grid's rows
#   WORLD=toyworld3 PRESET=toyworld3 MODEL=toy3 bash scripts/toyworld_comparison.sh OUT   # the third toy world
#
# Each source posterior is one `bmtpt source --seed S` run (M = 5 for bmtpt, M = 1 for multitask), so
# the posteriors are independent draws of the source stage; `fewshot` crosses each with every seed and
# clusters its bootstrap intervals by posterior. Grids: the world's preset (the paper's learning
# rates 0.3 / 0.4), a tenth of them, and a σ sweep of bmtpt. One thread per command, two at a time;
# a finished step leaves OUT/logs/NAME.done and a rerun skips it (a stopped grid resumes cell by cell).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-toyworld-comparison}
MODEL=${MODEL:-toy}
PRESET=${PRESET:-toyworld}
SEEDS=${SEEDS:-40}
POSTERIORS=${POSTERIORS:-"11 12 13"}
SHOTS=${SHOTS:-16}
STAGE=${STAGE:-all}
SIGMAS=${SIGMAS:-"3 10 30"}
METHODS=${METHODS:-pt,multitask,bmtpt,bmtpt-noprior}
BMTPT=".venv/bin/bmtpt"
PY=.venv/bin/python
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT/logs"

LOGS="$OUT/logs"
source scripts/lib.sh

# Source posteriors: 300 SVGD steps on all twelve sources, one run per posterior seed.
SOURCE_TRAINING=(--preset "$PRESET" --model "$MODEL" --tasks "$(join "${SOURCES[@]}")" --steps 300 --warmup-steps 10 --checkpoint-every 300)
particles=() multitask=()
for seed in $POSTERIORS; do
  run "p5-$seed" $BMTPT source "${SOURCE_TRAINING[@]}" --particles 5 --seed "$seed" --out "$OUT/p5-$seed.safetensors" &
  run "m1-$seed" $BMTPT source "${SOURCE_TRAINING[@]}" --particles 1 --seed "$seed" --out "$OUT/m1-$seed.safetensors" &
  wait
  particles+=("$OUT/p5-$seed.safetensors") multitask+=("$OUT/m1-$seed.safetensors")
done
[[ $STAGE == sources ]] && exit 0

GRID=(--preset "$PRESET" --model "$MODEL" --tasks "$(join "${TARGETS[@]}")" --shots "$SHOTS" --seeds "$SEEDS"
      --particles "$(join "${particles[@]}")" --multitask "$(join "${multitask[@]}")" --solved-at 0.9 --baseline pt)
resume() { [[ -s "$1/results.jsonl" ]] && echo --resume || true; }  # a stopped grid goes on cell by cell
run grid $BMTPT fewshot "${GRID[@]}" --methods "$METHODS" --out "$OUT/grid" $(resume "$OUT/grid")
[[ $STAGE == grid ]] && exit 0
run grid-lr0.03 $BMTPT fewshot "${GRID[@]}" --methods "$METHODS" --lr-shared 0.03 --lr-scales 0.04 \
  --out "$OUT/grid-lr0.03" $(resume "$OUT/grid-lr0.03")
for sigma in $SIGMAS; do
  run "sigma$sigma" $BMTPT fewshot "${GRID[@]}" --methods pt,bmtpt --sigma "$sigma" --out "$OUT/sigma$sigma" $(resume "$OUT/sigma$sigma") &
  if (( $(jobs -r | wc -l) >= 2 )); then wait -n; fi
done
wait
echo "done: $OUT (each grid's table.md; report.json holds the pairs)" >&2
