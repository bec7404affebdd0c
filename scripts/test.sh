#!/usr/bin/env bash
# Install, run the static checks (ruff lint, ruff format, mypy: strict for the core modules, see
# pyproject.toml), then the whole test suite (slow tests included: they run the real scorers).
# Any failing check fails the script. Arguments go to pytest; REBENCH_SKIP_CHECKS=1 skips the
# static checks (for a quick targeted test run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
if [ "${REBENCH_SKIP_CHECKS:-0}" != 1 ]; then
  failed=()
  echo "[test] ruff check ." >&2
  "$PY" -m ruff check . || failed+=("ruff check")
  echo "[test] ruff format --check ." >&2
  "$PY" -m ruff format --check . || failed+=("ruff format --check")
  echo "[test] mypy rebench_gym" >&2
  "$PY" -m mypy rebench_gym || failed+=("mypy")
  if [ ${#failed[@]} -gt 0 ]; then
    (IFS=","; echo "[test] static checks failed: ${failed[*]}" >&2)
    exit 1
  fi
fi
exec "$PY" -m pytest -q "$@"
