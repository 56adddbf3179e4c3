#!/usr/bin/env bash
# Wall time of one ragecg command, old code vs this checkout, alternating runs, same venv and RAGECG_HOME
# (docs/benchmarks.md "Layering"). Usage: [N=5] [BASE=/work/base] bench/sidebyside.sh LABEL ARGS...
#   e.g. N=5 bench/sidebyside.sh "diagnose --help" diagnose --help
# Prints each pair of runs (seconds, exit code) and the medians.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE:-/work/base}
PY=${PY:-$HERE/.venv/bin/python}
N=${N:-5}
export RAGECG_USE_SERVER=never HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
what=$1; shift
t() { local s e rc; s=$(date +%s.%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s.%N); echo "$(echo "$e - $s" | bc) $rc"; }
declare -a B A
for i in $(seq 1 "$N"); do
  b=$(cd "$BASE" && PYTHONPATH="$BASE" t "$PY" -m ragecg.cli "$@")
  a=$(cd "$HERE" && PYTHONPATH="$HERE" t "$PY" -m ragecg.cli "$@")
  echo "run $i: before $b | after $a"
  B+=("${b% *}"); A+=("${a% *}")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "$what: median before $(med "${B[@]}") s, after $(med "${A[@]}") s (N=$N, alternating; command: N=$N BASE=$BASE bench/sidebyside.sh \"$what\" $*)"
