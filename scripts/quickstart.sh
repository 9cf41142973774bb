#!/usr/bin/env bash
# Set up, build the tiny offline model, start the gateway and a supervised vLLM on it, show a call with the
# openai client, and keep serving until Ctrl-C. No model download: the tiny model is built locally.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
exec uv run --frozen vlmgw quickstart "$@"
