"""A server that a test or benchmark starts (gateway, vLLM): wait until ``GET /health`` answers 200, and stop
its process group."""

from __future__ import annotations

import os
import signal
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


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 60, kill_wait_s: float = 10) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), SIGKILL it when it
    has not exited after ``grace_s``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(kill_wait_s)
