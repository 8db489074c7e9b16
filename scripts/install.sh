#!/usr/bin/env bash
# Installs bmtpt into ./.venv (created if absent); `--test` adds the test extra (pytest, peft).
# PyTorch: a machine that already has torch keeps it (a GPU machine's CUDA build included); otherwise
# a machine with an NVIDIA driver gets the registry's default (CUDA) build, and a CPU-only machine
# gets the pinned CPU wheel torch==2.13.0 instead of gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=""
case "${1:-}" in
  --test) extra="[test]" ;;
  "") ;;
  *) echo "usage: scripts/install.sh [--test]" >&2; exit 2 ;;
esac

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if "$python" -c "import torch" >/dev/null 2>&1; then
    "$python" -m venv --system-site-packages .venv  # reuse the machine's own torch build
  else
    "$python" -m venv .venv
  fi
fi

pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
quiet() {  # pip's warnings about index locations this machine's config names but lacks: nothing a user can act on
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    quiet "${pip[@]}" install torch
  else
    quiet "${pip[@]}" install "torch==2.13.0"
  fi
fi
quiet "${pip[@]}" install -e ".${extra}"
