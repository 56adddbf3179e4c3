#!/usr/bin/env bash
# The test command (README): install if needed, the lint and import rules, then the CI suite (slow
# benchmarks excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/ragecg ] || [ pyproject.toml -nt .venv/.installed ]; then
  bash scripts/install.sh --no-run
  touch .venv/.installed
fi
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The layering rules (docs/architecture.md): lint, then the import contracts (one direction, no cycles).
ruff check --quiet ragecg tests
lint-imports --no-cache
set +e
python -m pytest -m "not slow" -q "$@"
rc=$?
set -e
# pytest exit 5 = no tests collected: that must not pass silently as green.
if [ $rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit $rc
