# Shared by the study scripts (source it after setting OUT): a toy world's task lists ($WORLD) and a resumable step.
#   LOGS   where each step's log and .done marker go (default: $OUT)
PY=${PY:-.venv/bin/python}
BMTPT=${BMTPT:-.venv/bin/bmtpt}
join() { local IFS=,; echo "$*"; }
WORLD=${WORLD:-toyworld}  # or toyworld3: the third toy world (its tasks; its model is toy3)
read -ra TARGETS <<< "$($PY -c "from bmtpt_cli.data import $WORLD as w; print(*w.TARGET_NAMES)")"
read -ra SOURCES <<< "$($PY -c "from bmtpt_cli.data import $WORLD as w; print(*w.SOURCE_NAMES)")"
run() { # run NAME COMMAND...: once (a finished step leaves LOGS/NAME.done and is skipped), logging to LOGS/NAME.log
  local name=$1 logs=${LOGS:-$OUT}; shift
  mkdir -p "$logs"
  if [[ -e "$logs/$name.done" ]]; then return; fi
  echo "[$(date +%T)] $name" >&2
  if "$@" > "$logs/$name.log" 2>&1; then touch "$logs/$name.done"; else
    echo "FAILED: $name (see $logs/$name.log)" >&2; return 1; fi
}
