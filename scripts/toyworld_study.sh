#!/usr/bin/env bash
# Every measurement in docs/toyworld.md, from the shipped CLI on the shipped toy model, in one run.
#
#   bash scripts/toyworld_study.sh [OUT]          # OUT defaults to toyworld-study/; ~40 min on 2 CPU cores
#   MODEL=/tmp/candidate bash scripts/toyworld_study.sh OUT    # the same on another toy checkpoint
#
# Two commands run at a time, one thread each (on a shared 2-core machine two OpenMP threads per
# process were 5-15x slower). A finished step leaves OUT/logs/NAME.done and is skipped by a rerun, so a
# stopped run continues.
# The tables in docs/toyworld.md are printed from OUT by scripts/toyworld_tables.py.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-toyworld-study}
MODEL=${MODEL:-toy}
BMTPT=".venv/bin/bmtpt"
PY=.venv/bin/python
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"

LOGS="$OUT/logs"
source scripts/lib.sh
ALL_TARGETS=$(join "${TARGETS[@]}")
ALL_SOURCES=$(join "${SOURCES[@]}")
export -f run
export LOGS
JOBS=${JOBS:-2}  # commands at a time
maybe_bg() { if (( JOBS > 1 )); then "$@" & else "$@"; fi; }

# Property 1: no prompt, random prompts, the instruction as text; shortcut rules.
run p1 $PY scripts/toyworld_baselines.py --model $MODEL   # the table is logs/p1.log

# Single-task prompts (M = 1, random vocabulary init) for every source and target: the SPoT pool,
# the related/unrelated inits of property 3, and the zero-shot transfer heatmap.
PROMPT_TRAINING=(--preset toyworld --model $MODEL --per-task --steps 300 --examples-per-task 16 --warmup-steps 10 --checkpoint-every 300)
maybe_bg run sources $BMTPT source "${PROMPT_TRAINING[@]}" --tasks "$ALL_SOURCES" --out "$OUT/source-prompts"
maybe_bg run targets $BMTPT source "${PROMPT_TRAINING[@]}" --tasks "$ALL_TARGETS" --out "$OUT/target-prompts"
wait

# Property 2: prompt tuning from random vocabulary init on the full training data (k = 4000), 3 seeds.
maybe_bg run p2 $BMTPT fewshot --preset toyworld --model $MODEL --methods pt --shots 4000 --seeds 3 --steps 600 --warmup-steps 10 \
  --dev-shots 200 --tasks "$ALL_TARGETS" --out "$OUT/p2"

# Zero-shot transfer: every single-task prompt scored as it is on every task (test split).
mkdir -p "$OUT/all-prompts"
for f in "$OUT"/source-prompts/*.safetensors "$OUT"/target-prompts/*.safetensors; do
  ln -sf "$(realpath "$f")" "$OUT/all-prompts/$(basename "$f")"
done
maybe_bg run heatmap $BMTPT transfer-matrix --preset toyworld --model $MODEL --prompts-dir "$OUT/all-prompts" \
  --tasks "$ALL_SOURCES,$ALL_TARGETS" --out "$OUT/transfer"
wait

# Property 3: at k = 16, init from a related source prompt (same operation, other label words) vs an
# unrelated one (other operation, the target's label words) vs random, 5 seeds, 30 steps, at the
# default learning rates (0.3 / 0.4) and at a tenth of them (step 0 is the zero-shot matrix above).
jobs_p3=()
for target in "${TARGETS[@]}"; do
  mkdir -p "$OUT/p3/$target"
  inits=$($PY -c "from bmtpt_cli.data import toyworld as t; print(*t.related_sources('$target'), *t.unrelated_sources('$target'))")
  for init in $inits random; do
    path=$OUT/source-prompts/$init.safetensors
    [[ $init == random ]] && path=random
    for lr in 0.3 0.03; do
      lr_scales=$($PY -c "print(round($lr * 4 / 3, 6))")
      jobs_p3+=("p3-$target-$init-lr$lr $BMTPT evaluate --preset toyworld --model $MODEL --shots 16 --init $path --tasks $target --seeds 0,1,2,3,4 --steps 30 --lr-shared $lr --lr-scales $lr_scales --out $OUT/p3/$target/$init-lr$lr.json")
    done
  done
done
printf '%s\n' "${jobs_p3[@]}" | OUT=$OUT xargs -P "$JOBS" -I{} bash -c 'run {}'

# The comparison: BMTPT (M = 5) and the baselines at k = 4, 16, 32, 3 seeds, on all four targets (30 steps a cell).
SOURCE_TRAINING=(--preset toyworld --model $MODEL --tasks "$ALL_SOURCES" --steps 300 --warmup-steps 10 --checkpoint-every 300)
maybe_bg run particles5 $BMTPT source "${SOURCE_TRAINING[@]}" --particles 5 --out "$OUT/p5.safetensors"
maybe_bg run particles1 $BMTPT source "${SOURCE_TRAINING[@]}" --particles 1 --out "$OUT/m1.safetensors"
wait
GRID=(--preset toyworld --model $MODEL --methods pt,multitask,bmtpt,bmtpt-noprior,spot --particles "$OUT/p5.safetensors"
      --multitask "$OUT/m1.safetensors" --source-prompts "$OUT/source-prompts" --shots 4,16,32 --seeds 3)
maybe_bg run grid-a $BMTPT fewshot "${GRID[@]}" --tasks toy_animal_right,toy_mood_true --out "$OUT/grid-a"
maybe_bg run grid-b $BMTPT fewshot "${GRID[@]}" --tasks toy_tool_yes,toy_time_right --out "$OUT/grid-b"
wait
# The same grid at a tenth of the learning rates (property 3: at 0.3 tuning wipes out a transferred head start).
GRID_LOW=("${GRID[@]}" --lr-shared 0.03 --lr-scales 0.04)
maybe_bg run grid-lr0.03-a $BMTPT fewshot "${GRID_LOW[@]}" --tasks toy_animal_right,toy_mood_true --out "$OUT/grid-lr0.03-a"
maybe_bg run grid-lr0.03-b $BMTPT fewshot "${GRID_LOW[@]}" --tasks toy_tool_yes,toy_time_right --out "$OUT/grid-lr0.03-b"
wait
echo "done: $OUT (tables: $PY scripts/toyworld_tables.py $OUT)" >&2
