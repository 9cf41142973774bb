#!/usr/bin/env bash
# Set up and run every check: lint, format, types, unit tests, and integration tests against a real vLLM
# (CPU build) serving the tiny offline model (one engine per session; first start 40-100 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
echo "[test] ruff" >&2
uv run --frozen ruff check .
uv run --frozen ruff format --check .
echo "[test] mypy" >&2
uv run --frozen mypy
echo "[test] pytest" >&2
uv run --frozen pytest -p no:cacheprovider "$@"
