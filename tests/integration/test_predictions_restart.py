"""Batch predictions survive a gateway restart and never run twice, on the real vLLM.

The gateways here are our own (``vlmgw serve --engine-url`` to the session's vLLM, so they start in
seconds), sharing a data directory (SQLite database and stored media) across the restart. One is stopped
the way an operator stops it (SIGTERM: running jobs are given back), one is killed outright (SIGKILL: its
claim lapses after the lease). Afterwards every job is completed, its callback arrived exactly once, and
the database shows which job was claimed twice.
"""

from __future__ import annotations

import datetime
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import GatewayProcess, stop_gateway
from tests.support.callback_receiver import CallbackReceiver
from tests.support.media import png_bytes
from tests.support.session_gateway import start_engine_gateway
from tests.support.slow_engine import slow_engine

pytestmark = pytest.mark.integration

KEY = "restart-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}
RED = __import__("base64").b64encode(png_bytes("red", 56)).decode()
JOB = {"images": [RED], "domain": "document.ocr", "batch": True, "config": {"max_tokens": 1024}}


@pytest.fixture(scope="module")
def engine_url(gateway: GatewayProcess) -> Iterator[str]:
    """The session's vLLM behind a proxy that holds each answer 3 s: the tiny model can answer in a few
    milliseconds, and a job must still be running when the test stops or kills its gateway."""
    url: str = httpx.get(gateway.url + "/health").json()["engines"][0]["url"]
    with slow_engine(url, hold_s=3.0) as proxy:
        yield proxy.url("")


def start(data_dir: Path, engine_url: str, **env: str) -> GatewayProcess:
    return start_engine_gateway(
        data_dir, engine_url, KEY, VLMGW_MEDIA_FETCH_ALLOW="127.0.0.0/8", VLMGW_PREDICTIONS_CONCURRENCY="1",
        VLMGW_PREDICTIONS_POLL_INTERVAL_S="0.2", VLMGW_CALLBACK_BACKOFF_S="0.5", **env,
    )  # fmt: skip


def submit(gw: GatewayProcess, count: int, callback_url: str) -> list[str]:
    ids = []
    for _ in range(count):
        resp = httpx.post(f"{gw.url}/v1/image/generate", json={**JOB, "callback_url": callback_url},
                          headers=HEADERS)  # fmt: skip
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids


def wait_running(gw: GatewayProcess, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = httpx.get(f"{gw.url}/v1/predictions", params={"limit": 50}, headers=HEADERS).json()
        running = [p["id"] for p in listed if p["status"] == "running"]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError("no prediction started running")


def wait_all_done(gw: GatewayProcess, ids: list[str], timeout_s: float = 600) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = {i: httpx.get(f"{gw.url}/v1/predictions/{i}", headers=HEADERS).json() for i in ids}
        if all(p["status"] in ("completed", "failed") and p["callback"]["status"] != "pending"
               for p in found.values()):  # fmt: skip
            return found
        time.sleep(0.5)
    raise AssertionError(f"not done: {[(i, p['status']) for i, p in found.items()]}\n{gw.log_tail()}")


def rows(data_dir: Path) -> dict[str, tuple[str, int, str | None]]:
    """id -> (status, attempts, owner), read straight from the gateway's database."""
    with sqlite3.connect(data_dir / "vlmgw.sqlite3") as db:
        found = db.execute("SELECT id, status, attempts, owner FROM prediction").fetchall()
    return {str(i): (s, a, o) for i, s, a, o in found}


def started_at(data_dir: Path, prediction_id: str) -> float:
    with sqlite3.connect(data_dir / "vlmgw.sqlite3") as db:
        (value,) = db.execute("SELECT started FROM prediction WHERE id = ?", (prediction_id,)).fetchone()
    return datetime.datetime.fromisoformat(value).timestamp()


def finish_on(second: GatewayProcess, ids: list[str], hooks: CallbackReceiver) -> None:
    """``second`` completes every prediction of ``ids`` and calls each one's callback exactly once."""
    try:
        done = wait_all_done(second, ids)
        time.sleep(1.0)
    finally:
        stop_gateway(second)
    assert {p["status"] for p in done.values()} == {"completed"}, done
    assert {i: len(hooks.for_prediction(i)) for i in ids} == dict.fromkeys(ids, 1)


def test_graceful_restart_gives_running_jobs_back_and_runs_each_once(tmp_path: Path, engine_url: str) -> None:
    hooks = CallbackReceiver()
    with hooks.serve() as server:
        first = start(tmp_path, engine_url)
        try:
            ids = submit(first, 3, server.url("/hook"))
            interrupted = wait_running(first)
        finally:
            stop_gateway(first)
        assert first.proc.returncode is not None
        before = rows(tmp_path)
        assert before[interrupted][0] == "pending" and before[interrupted][2] is None  # given back
        restarted = time.time()
        assert all(status in ("pending", "completed") for status, _, _ in before.values())
        finish_on(start(tmp_path, engine_url), ids, hooks)
    after = rows(tmp_path)
    assert started_at(tmp_path, interrupted) >= restarted  # run again from the start by the new gateway
    assert {after[i][1] for i in ids} == {1}  # a job given back on shutdown is not a failed attempt


def test_a_killed_gateways_job_is_claimed_again_after_its_lease(tmp_path: Path, engine_url: str) -> None:
    hooks = CallbackReceiver()
    lease = {"VLMGW_PREDICTIONS_LEASE_S": "3"}
    with hooks.serve() as server:
        first = start(tmp_path, engine_url, **lease)
        try:
            ids = submit(first, 2, server.url("/hook"))
            crashed = wait_running(first)
        finally:
            os.killpg(first.proc.pid, signal.SIGKILL)
            first.proc.wait(30)
        status, attempts, owner = rows(tmp_path)[crashed]
        assert (status, attempts) == ("running", 1) and owner  # still claimed by the dead gateway
        finish_on(start(tmp_path, engine_url, **lease), ids, hooks)
    assert rows(tmp_path)[crashed][1] == 2
