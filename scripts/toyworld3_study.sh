#!/usr/bin/env bash
# The third toy world's five properties and the comparison of every method on it (docs/toyworld.md, "The third
# toy world"), from the shipped CLI on the shipped toy3 model.
#
#   bash scripts/toyworld3_study.sh [OUT]                  # OUT defaults to toyworld3-study/
#   STAGE=comparison bash scripts/toyworld3_study.sh OUT   # properties 1, 3, 4, 5 and the main grids (k = 4, 16, 32)
#   SEEDS=40 POSTERIORS="11 12 13" bash scripts/toyworld3_study.sh OUT
#   SIGMAS="3 10 100": the σ sweep of bmtpt (k = 16), tabulated by scripts/toyworld3_sigma_table.py
#
# Every source stage is run once per posterior seed (POSTERIORS), so the grids cross independent source runs with
# the seeds and cluster their bootstrap intervals by posterior. Two commands at a time, one thread each; a finished
# step leaves OUT/logs/NAME.done and is skipped by a rerun, and a stopped grid resumes cell by cell. A grid's step
# is named with its seed count (grid-k16-a-s40), so a rerun with more SEEDS extends the grids from their cells.
# Tables: logs/p1.log, logs/p4-*.log, p2/ p3/, each grid's table.md (report.json holds the pairs), tables.md (every
# grid as docs/toyworld.md shows it), logs/sigma-table-sSEEDS.log and logs/lr-table-kK-sSEEDS.log.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-toyworld3-study}
MODEL=${MODEL:-toy3}
STAGE=${STAGE:-all}
SEEDS=${SEEDS:-40}
POSTERIORS=${POSTERIORS:-"11 12 13"}
SHOTS=${SHOTS:-4,16,32}
METHODS_A=${METHODS_A:-pt,multitask,bmtpt,bmtpt-noprior}
METHODS_B=${METHODS_B:-pt,spot,attempt}
SIGMAS=${SIGMAS:-"3 10 100"}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 WORLD=toyworld3
mkdir -p "$OUT"
LOGS="$OUT/logs"
source scripts/lib.sh
ALL_TARGETS=$(join "${TARGETS[@]}")
ALL_SOURCES=$(join "${SOURCES[@]}")
PRESET=(--preset toyworld3 --model "$MODEL")
resume() { [[ -s "$1/results.jsonl" ]] && echo --resume || true; }  # a stopped grid goes on cell by cell
two() { if (( $(jobs -r | wc -l) >= 2 )); then wait -n; fi; }  # at most two commands at a time

# Property 1: no prompt and 20 random prompts on every target (test split), and the shortcut rules.
run p1 $PY scripts/toyworld_baselines.py --model "$MODEL" --world toyworld3 --seeds 0-19 &

# The source stage, once per posterior seed: M = 5 particles (bmtpt), M = 1 (multitask, property 4) and one prompt
# per source task (spot, attempt, property 3), each on the preset's source schedule.
particles=() multitask=() per_task=()
for seed in $POSTERIORS; do
  run "p5-$seed" $BMTPT source "${PRESET[@]}" --particles 5 --seed "$seed" --out "$OUT/p5-$seed.safetensors" & two
  run "m1-$seed" $BMTPT source "${PRESET[@]}" --particles 1 --seed "$seed" --out "$OUT/m1-$seed.safetensors" & two
  run "per-task-$seed" $BMTPT source "${PRESET[@]}" --per-task --seed "$seed" --out "$OUT/source-prompts-$seed" & two
  particles+=("$OUT/p5-$seed.safetensors") multitask+=("$OUT/m1-$seed.safetensors") per_task+=("$OUT/source-prompts-$seed")
done
wait

# Property 4: the M = 1 prompts zero-shot on the twelve sources (and, for the record, on the targets).
run p4-sources $PY scripts/toyworld_zero_shot.py "${multitask[@]}" --model "$MODEL" --world toyworld3
run p4-targets $PY scripts/toyworld_zero_shot.py "${multitask[@]}" --model "$MODEL" --world toyworld3 --tasks "$ALL_TARGETS"

# Property 3: at k = 16 under the preset, init from each related source's prompt (the target's operation and field)
# against the unrelated one (the target's words the other way round, another operation) and random, 20 seeds.
property3() {
  local target init path
  for target in "${TARGETS[@]}"; do
    mkdir -p "$OUT/p3/$target"
    for init in $($PY -c "from bmtpt_cli.data import toyworld3 as t; print(*t.related_sources('$target'), *t.unrelated_sources('$target'))") random; do
      path=${per_task[0]}/$init.safetensors
      [[ $init == random ]] && path=random
      run "p3-$target-$init" $BMTPT evaluate "${PRESET[@]}" --shots 16 --init "$path" --tasks "$target" --seeds 0-19 \
        --out "$OUT/p3/$target/$init.json"
    done
  done
  run p3-table $PY scripts/toyworld3_p3_table.py "$OUT"
}

# The comparison of every method at the world's preset, k = 4, 16, 32 (property 5 is the k = 16 grid's multitask
# − pt row). Each k runs as two halves at once (METHODS_A and METHODS_B, pt in both: the same cells), then their
# rows are merged into grid-kK, whose --resume finds every cell done and writes the table of all methods.
SWEEP=("${PRESET[@]}" --tasks "$ALL_TARGETS" --seeds "$SEEDS" --particles "$(join "${particles[@]}")"
       --multitask "$(join "${multitask[@]}")" --source-prompts "$(join "${per_task[@]}")" --solved-at 0.9)
GRID=("${SWEEP[@]}" --baseline pt)
grid() { # grid NAME K METHODS [fewshot options]
  local name=$1 k=$2 methods=$3; shift 3
  run "$name-s$SEEDS" $BMTPT fewshot "${GRID[@]}" --methods "$methods" --shots "$k" "$@" --out "$OUT/$name" $(resume "$OUT/$name")
}
merge() { # merge NAME K [fewshot options]: the two halves' rows into NAME and its table
  local name=$1 k=$2; shift 2
  [[ -e "$LOGS/$name-s$SEEDS.done" ]] && return
  mkdir -p "$OUT/$name"
  cat "$OUT/$name-a/results.jsonl" "$OUT/$name-b/results.jsonl" > "$OUT/$name/results.jsonl"
  run "$name-s$SEEDS" $BMTPT fewshot "${GRID[@]}" --methods "$METHODS_A,${METHODS_B#pt,}" --shots "$k" "$@" --resume \
    --out "$OUT/$name"
}
first=yes
for k in ${SHOTS//,/ }; do
  ( [[ $first == yes ]] && property3; grid "grid-k$k-b" "$k" "$METHODS_B" ) &
  grid "grid-k$k-a" "$k" "$METHODS_A"
  wait
  merge "grid-k$k" "$k"
  first=no
done
tables() { $PY scripts/toyworld3_tables.py "$OUT" > "$OUT/tables.md"; }  # docs/toyworld.md's tables of every grid
tables
[[ $STAGE == comparison ]] && exit 0

# A σ sweep of bmtpt (k = 16) around the preset's σ = 30, bmtpt's cells only: pt's do not depend on σ (though their
# fingerprint records it), so scripts/toyworld3_sigma_table.py pairs each σ's cells with grid-k16's pt, bmtpt
# (σ = 30) and bmtpt-noprior (no prior) at the same seed and source posterior.
sweep() { # sweep SIGMA
  run "sigma$1-s$SEEDS" $BMTPT fewshot "${SWEEP[@]}" --methods bmtpt --shots 16 --sigma "$1" --out "$OUT/sigma$1" \
    $(resume "$OUT/sigma$1")
}
for sigma in $SIGMAS; do
  sweep "$sigma" & two
done
wait
run "sigma-table-s$SEEDS" $PY scripts/toyworld3_sigma_table.py "$OUT" ${SIGMAS// /,}

# Property 2: prompt tuning from random vocabulary init on the full training data (k = 4000), 3 seeds, at the
# paper's learning rates (the preset's are for keeping a good init in 30 steps, not for learning from scratch).
run p2 $BMTPT fewshot "${PRESET[@]}" --methods pt --shots 4000 --seeds 3 --steps 600 --warmup-steps 10 \
  --lr-shared 0.3 --lr-scales 0.4 --dev-shots 200 --out "$OUT/p2" &

# The comparison at the paper's learning rates (0.3 / 0.4, × 1/3 at k = 4 as at the preset), every k, then each
# method at the paper's rates paired with itself at the preset's (same seed, source run and k-shot sample).
PAPER_LR=(--lr-shared 0.3 --lr-scales 0.4)
for k in ${SHOTS//,/ }; do
  ( grid "grid-paper-lr-k$k-b" "$k" "$METHODS_B" "${PAPER_LR[@]}" ) &
  grid "grid-paper-lr-k$k-a" "$k" "$METHODS_A" "${PAPER_LR[@]}"
  wait
  merge "grid-paper-lr-k$k" "$k" "${PAPER_LR[@]}"
  run "lr-table-k$k-s$SEEDS" $PY scripts/toyworld3_lr_table.py "$OUT" "$k"
done
tables
echo "done: $OUT" >&2
