#!/usr/bin/env bash
# Fingerprint what the main commands compute, to show a refactor changed nothing (issue 21).
#
#   bash scripts/behaviour_fingerprint.sh OUT_DIR [PYTHON]
#
# Runs, on one thread: the demo chain (source → adapt → evaluate, --seed 3, the toy model) and a
# short toy fewshot grid from its particles (pt, bmtpt, bmtpt-noprior); a
# `fewshot` grid over pt, multitask, bmtpt and spot on the tiny model (its own source runs); and a
# `transfer-matrix --tune` on the tiny per-task prompts. Prints one line per artifact: the sha256 of
# its tensors (names and bytes, not the metadata, which holds times and paths) or of its scores.
# Run it before and after a change on the same machine and diff the two outputs. PYTHON (default
# .venv/bin/python) may point at another checkout through PYTHONPATH.
set -euo pipefail
out=${1:?usage: behaviour_fingerprint.sh OUT_DIR [PYTHON]}
py=${2:-.venv/bin/python}
mkdir -p "$out"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
b() { "$py" -m bmtpt_cli "$@" --threads 1 > /dev/null; }

# the demo chain (toy model, demo preset)
b source --seed 3 --out "$out/particles.safetensors"
b adapt --seed 3 --init "$out/particles.safetensors" --out "$out/prompts.safetensors"
b evaluate --prompts "$out/prompts.safetensors" --out "$out/results.json"
b fewshot --seed 3 --tasks toy_mood_true --methods pt,bmtpt,bmtpt-noprior --shots 4,16 --seeds 0-1 --steps 12 \
  --particles "$out/particles.safetensors" --out "$out/toy_fewshot"

# the tiny model: a posterior, a one-particle file, per-task prompts, a fewshot grid and a transfer matrix
tiny=(--model tiny --prompt-length 8 --seed 1)
src=(--tasks demo_review,demo_rte,demo_nli --steps 4 --warmup-steps 0)
b source "${tiny[@]}" "${src[@]}" --particles 3 --out "$out/tiny_particles.safetensors"
b source "${tiny[@]}" "${src[@]}" --particles 1 --out "$out/tiny_multitask.safetensors"
b source "${tiny[@]}" "${src[@]}" --per-task --particles 1 --out "$out/tiny_sources"
b fewshot "${tiny[@]}" --tasks demo_sentiment --methods pt,multitask,bmtpt,spot --shots 4,8 --seeds 0-1 \
  --steps 4 --batch-size 4 --retrieval-steps 2 --dev-shots 8 --particles "$out/tiny_particles.safetensors" \
  --multitask "$out/tiny_multitask.safetensors" --source-prompts "$out/tiny_sources" --out "$out/tiny_fewshot"
b transfer-matrix "${tiny[@]}" --prompts-dir "$out/tiny_sources" --tune 3 --batch-size 4 --out "$out/tiny_transfer"

"$py" - "$out" <<'PY'
import hashlib, json, sys
from pathlib import Path
from safetensors import safe_open

out = Path(sys.argv[1])

def tensors(path):
    digest = hashlib.sha256()
    with safe_open(str(path), "pt") as handle:
        for name in sorted(handle.keys()):
            digest.update(name.encode())
            digest.update(handle.get_tensor(name).numpy().tobytes())
    return digest.hexdigest()[:16]

def text(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]

for path in sorted(out.rglob("*.safetensors")):
    print(f"{path.relative_to(out)}  tensors {tensors(path)}")
results = json.loads((out / "results.json").read_text())["results"]
print(f"results.json  scores {text([(r['task'], r['value'], r['metrics']) for r in results])}",
      " ".join(f"{r['task']}={r['value']:.4f}" for r in results))
for grid in ("toy_fewshot", "tiny_fewshot"):
    rows = [json.loads(line) for line in (out / grid / "results.jsonl").read_text().splitlines()]
    print(f"{grid}/results.jsonl  scores {text(sorted((r['method'], r['k'], r['seed'], r['value']) for r in rows))}"
          f"  ({len(rows)} cells, mean {sum(r['value'] for r in rows) / len(rows):.4f})")
for path in sorted((out / "tiny_transfer").glob("*.json")):
    data = json.loads(path.read_text())
    data.pop("provenance", None), data.pop("settings", None)
    print(f"{path.relative_to(out)}  values {text(data.get('matrices', data.get('values', data)))}")
PY
