"""Wait for a server started by a test (gateway, vLLM) to answer ``GET /health`` with 200."""

from __future__ import annotations

import subprocess
import time

import httpx


def wait_healthy(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll ``url + "/health"`` once a second; True at the first 200, False once ``proc`` (when given) has
    exited or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False
