#!/usr/bin/env bash
# Set up and run every check: lint, format, types, unit tests, and integration and browser tests against a
# real vLLM (CPU build) serving the tiny offline model (one engine per session; first start 40-100 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
echo "[test] ruff" >&2
uv run --frozen ruff check .
uv run --frozen ruff format --check .
echo "[test] mypy" >&2
uv run --frozen mypy
# The browser tests (tests/e2e) drive Debian's Chromium through Playwright; never a browser download.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -x /usr/bin/chromium ]; then
  echo "[test] installing Debian's chromium for the browser tests" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y chromium || { $SUDO apt-get update && $SUDO apt-get install -y chromium; }
fi
echo "[test] pytest" >&2
uv run --frozen pytest -p no:cacheprovider "$@"
