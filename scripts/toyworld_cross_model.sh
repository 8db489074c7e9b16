#!/usr/bin/env bash
# Cross-model transfer on the toy world (docs/toyworld.md, "Cross-model transfer: toy → toy-wide", issue 23):
# prompts trained on `toy` (d 128) moved to `toy-wide` (d 192) by `bmtpt project`, zero-shot and after k-shot tuning.
#
#   bash scripts/toyworld_cross_model.sh [OUT]                   # OUT defaults to toyworld-cross-model/
#   SEEDS=20 POSTERIORS="11 12 13" SHOTS=16 PROJECTOR_STEPS=1000 bash scripts/toyworld_cross_model.sh OUT
#
# Per source run S in POSTERIORS:
# 1. Per-task prompts of the 12 source tasks on `toy` (`bmtpt source --per-task --seed S`, 300 steps: the prompts
#    of scripts/toyworld_spot_study.sh), and each target's prompt tuned on `toy` with its full training data
#    (`bmtpt adapt --init random --seed S`, 600 steps of 32, the best of 12 dev evaluations: property 2's protocol).
# 2. A projector toy → toy-wide trained by task tuning through the frozen toy-wide on the 12 *source* tasks, each
#    task's own prompt projected (`bmtpt project --objective task --seed S`); no target prompt or example is seen.
# 3. The saved projector applied to the 4 *target* prompts (`bmtpt project --projector`).
# 4. Zero-shot on the test split: each target's toy prompt on toy, and its projection on toy-wide
#    (`bmtpt evaluate`; OUT/zero-shot-S.jsonl). Random prompts and no prompt on toy-wide for comparison:
#    `scripts/toyworld_baselines.py --model toy-wide --seeds 0-19` (OUT/baselines-wide.log).
# 5. k-shot tuning on toy-wide under the toyworld preset, per target: from the projected prompt (`from-prompts`,
#    the prior as the preset says) and from random init (`pt`), the same SEEDS k-shot subsets (`bmtpt evaluate
#    --shots`); paired by seed in the summary (scripts/toyworld_cross_model_table.py OUT).
# 6. Su et al.'s protocol, "a projector trained on similar tasks", for the source runs in SIMILAR (default: the
#    first): per target, a projector trained on its two related sources only (the same operation), applied to the
#    target's toy prompt; zero-shot (`transfer-matrix`, OUT/zero-similar-S-T/zero_shot.json) and tuned as in 4-5.
#    The control, in the same matrix: those sources' own projected prompts scored on the target (cross-task transfer
#    on toy-wide), which says whether the target prompt's projection adds anything to the projector's fit.
# One thread per command; a finished step leaves OUT/NAME.done and is skipped on a rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-toyworld-cross-model}
SEEDS=${SEEDS:-20}
POSTERIORS=${POSTERIORS:-"11 12 13"}
SHOTS=${SHOTS:-16}
PROJECTOR_STEPS=${PROJECTOR_STEPS:-1000}
SIMILAR=${SIMILAR:-${POSTERIORS%% *}}
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$OUT"
source scripts/lib.sh

run baselines-wide $PY scripts/toyworld_baselines.py --model toy-wide --seeds 0-19
for seed in $POSTERIORS; do
  run "sources-$seed" $BMTPT source --preset toyworld --per-task --tasks "$(join "${SOURCES[@]}")" \
    --steps 300 --warmup-steps 10 --checkpoint-every 300 --seed "$seed" --out "$OUT/sources-$seed" --force
  mkdir -p "$OUT/targets-$seed"
  for task in "${TARGETS[@]}"; do
    run "target-$seed-$task" $BMTPT adapt --preset toyworld --init random --tasks "$task" --steps 600 --batch-size 32 \
      --warmup-steps 30 --eval-every 50 --checkpoint-every 600 --seed "$seed" --out "$OUT/targets-$seed/$task.safetensors" --force
  done
  run "projector-$seed" $BMTPT project --prompts "$OUT/sources-$seed" --model toy-wide --objective task \
    --tasks "$(join "${SOURCES[@]}")" --steps "$PROJECTOR_STEPS" --seed "$seed" --max-target-length 4 --taskless \
    --out "$OUT/wide-sources-$seed" --force
  run "projected-$seed" $BMTPT project --prompts "$OUT/targets-$seed" --model toy-wide \
    --projector "$OUT/wide-sources-$seed.projector.safetensors" --out "$OUT/wide-targets-$seed" --force
  for task in "${TARGETS[@]}"; do
    run "zero-toy-$seed-$task" $BMTPT evaluate --preset toyworld --prompts "$OUT/targets-$seed/$task.safetensors" \
      --split test --out "$OUT/zero-toy-$seed-$task.json" --force
    run "zero-wide-$seed-$task" $BMTPT evaluate --preset toyworld --model toy-wide \
      --prompts "$OUT/wide-targets-$seed/$task.safetensors" --split test --out "$OUT/zero-wide-$seed-$task.json" --force
    run "tuned-$seed-$task" $BMTPT evaluate --preset toyworld --model toy-wide --tasks "$task" --shots "$SHOTS" \
      --seeds "$SEEDS" --method from-prompts --init "$OUT/wide-targets-$seed/$task.safetensors" \
      --out "$OUT/tuned-$seed-$task.json" --force
  done
done
for seed in $SIMILAR; do
  for task in "${TARGETS[@]}"; do
    read -ra related <<< "$($PY -c "from bmtpt_cli.data import toyworld; print(*toyworld.related_sources('$task'))")"
    run "similar-projector-$seed-$task" $BMTPT project --prompts "$OUT/sources-$seed" --model toy-wide --objective task \
      --tasks "$(join "${related[@]}")" --steps "$PROJECTOR_STEPS" --seed "$seed" --max-target-length 4 --taskless \
      --out "$OUT/similar-sources-$seed-$task" --force
    run "similar-projected-$seed-$task" $BMTPT project --prompts "$OUT/targets-$seed/$task.safetensors" --model toy-wide \
      --projector "$OUT/similar-sources-$seed-$task.projector.safetensors" --out "$OUT/similar-$seed-$task.safetensors" --force
    mkdir -p "$OUT/similar-prompts-$seed-$task"  # the target's projection beside its related sources' own
    ln -sf "../similar-$seed-$task.safetensors" "$OUT/similar-prompts-$seed-$task/$task.safetensors"
    for source in "${related[@]}"; do
      ln -sf "../similar-sources-$seed-$task/$source.safetensors" "$OUT/similar-prompts-$seed-$task/"
    done
    run "zero-similar-$seed-$task" $BMTPT transfer-matrix --preset toyworld --model toy-wide --no-neurons \
      --prompts-dir "$OUT/similar-prompts-$seed-$task" --tasks "$task" --out "$OUT/zero-similar-$seed-$task" --force
    run "tuned-similar-$seed-$task" $BMTPT evaluate --preset toyworld --model toy-wide --tasks "$task" --shots "$SHOTS" \
      --seeds "$SEEDS" --method from-prompts --init "$OUT/similar-$seed-$task.safetensors" \
      --out "$OUT/tuned-similar-$seed-$task.json" --force
  done
done
for task in "${TARGETS[@]}"; do  # random init does not depend on the source run: once per target
  run "pt-$task" $BMTPT evaluate --preset toyworld --model toy-wide --tasks "$task" --shots "$SHOTS" --seeds "$SEEDS" \
    --init random --out "$OUT/pt-$task.json" --force
done
$PY scripts/toyworld_cross_model_table.py "$OUT" | tee "$OUT/summary.md"
