#!/usr/bin/env bash
# Install, then run the whole test suite (slow tests included: they run the real scorers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
exec "$PY" -m pytest -q "$@"
