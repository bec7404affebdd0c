#!/usr/bin/env bash
# Installs everything rebench_gym needs on a fresh Debian/Ubuntu machine (idempotent):
# bubblewrap (the isolating sandbox), the CPU build of PyTorch, and the package with its
# development extras and every optional integration (kernel, docker, ray, llm, sb3, plot).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v bwrap >/dev/null 2>&1; then
  echo "[setup] installing bubblewrap" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi

# RustCodecontests: the agent's bwrap shell sees only /usr, so use Debian's rustc there (the
# scorer also finds a rustup toolchain through PATH or ~/.cargo/bin).
if [ ! -x /usr/bin/rustc ]; then
  echo "[setup] installing rustc (Debian package)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc >/dev/null
fi

PY=${PYTHON:-python3}
# Pinned CPU build first: an unpinned or newer torch pulls a CUDA build of several GB.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0 (CPU build)" >&2
  "$PY" -m pip install -q torch==2.13.0
fi
echo "[setup] installing rebench-gym[all,dev]" >&2
"$PY" -m pip install -q -e ".[all,dev]"
