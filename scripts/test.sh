#!/usr/bin/env bash
# Install, run the static checks (ruff lint, ruff format, mypy: strict for the core modules, see
# pyproject.toml), then the whole test suite (slow tests included: they run the real scorers).
# Any failing check fails the script. Arguments go to pytest; REBENCH_SKIP_CHECKS=1 skips the
# static checks (for a quick targeted test run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Chromium (headless) for the test that opens a `rebench view` page in a real browser.
if ! command -v chromium >/dev/null 2>&1; then
  echo "[test] installing chromium (headless browser for the page tests)" >&2
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
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
