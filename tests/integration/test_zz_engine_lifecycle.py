"""Engine supervision with real vLLM: killed engine -> 503 -> restarted and served; SIGTERM -> no orphans.

Named ``test_zz_*`` so it runs after the other integration tests: it restarts, then stops, the shared gateway.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import ADAPTER, MODEL, GatewayProcess

USER = [{"role": "user", "content": "hi"}]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def engine_pid(gateway: GatewayProcess) -> int:
    pid = gateway.health().json()["engines"][0]["pid"]
    assert isinstance(pid, int)
    return pid


def served_adapters(gateway: GatewayProcess) -> set[str]:
    """The adapters the engine itself has loaded (its own model list, not the gateway's)."""
    url = gateway.health().json()["engines"][0]["url"]
    return {m["id"] for m in httpx.get(url + "/v1/models", timeout=10).json()["data"] if m.get("parent")}


def ask_adapter(client: openai.OpenAI) -> str:
    resp = client.chat.completions.create(model=ADAPTER, messages=USER, max_tokens=8, temperature=0)
    return resp.choices[0].message.content or ""


def test_killed_engine_gives_503_then_recovers(gateway: GatewayProcess, client: openai.OpenAI) -> None:
    before = ask_adapter(client)  # the adapter is loaded in the engine when it is killed
    assert ADAPTER in served_adapters(gateway)
    old = engine_pid(gateway)
    assert len(group_members(old)) >= 2, "vLLM runs an API server and an engine-core process"
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.chat.completions.create(model=MODEL, messages=USER, max_tokens=2)
        except openai.InternalServerError as err:
            assert err.status_code == 503
            assert err.response.headers["retry-after"].isdigit()
            assert err.code == "engine_unavailable"
            break
        assert time.monotonic() < deadline, "requests kept succeeding after the engine was killed"
        time.sleep(0.2)
    killed = time.monotonic()
    assert gateway.health().status_code == 503
    time.sleep(2)
    assert group_members(old) == [], "the killed engine's other processes must be reaped"

    # Back in the time vLLM takes to start (three Python processes; about 40-70 s on two cores): the
    # supervisor restarts an engine that was serving at once, without back-off.
    deadline = killed + 120
    while gateway.health().status_code != 200:
        assert time.monotonic() < deadline, f"engine not back after 120 s:\n{gateway.log_tail()}"
        time.sleep(0.5)
    print(f"engine back {time.monotonic() - killed:.1f} s after SIGKILL")
    assert "restarting in 0 s" in gateway.log_tail(200)
    resp = client.chat.completions.create(model=MODEL, messages=USER, max_tokens=2)
    assert resp.choices[0].message.content is not None
    health = gateway.health().json()["engines"][0]
    assert health["restarts"] == 1 and health["pid"] != old

    # The adapter it had is loaded again by the gateway itself (no request asked for it), answering as before.
    deadline = time.monotonic() + 30
    while ADAPTER not in served_adapters(gateway):
        assert time.monotonic() < deadline, f"adapter not re-loaded:\n{gateway.log_tail()}"
        time.sleep(0.5)
    assert ask_adapter(client) == before


def test_sigterm_stops_gateway_and_engine_without_orphans(gateway: GatewayProcess) -> None:
    pid = engine_pid(gateway)
    members = group_members(pid)
    assert members
    gateway.proc.send_signal(signal.SIGTERM)
    try:
        code = gateway.proc.wait(60)
    except Exception:
        pytest.fail(f"gateway did not stop on SIGTERM:\n{gateway.log_tail()}")
    assert code in (0, -signal.SIGTERM), "uvicorn re-raises SIGTERM after a clean shutdown"
    deadline = time.monotonic() + 30
    while group_members(pid):
        assert time.monotonic() < deadline, f"orphaned engine processes: {group_members(pid)}"
        time.sleep(0.5)
    assert "stopping engine" in gateway.log_tail(200)
