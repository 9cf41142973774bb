"""The database unavailable for a moment: another process holds SQLite's write lock.

A lock held for less than the busy timeout (5 s) only delays writes. One held longer makes the writes that
waited fail with a 503 in OpenAI's error shape, ``code: database_unavailable`` and ``Retry-After``, never a
500; nothing of a refused write is kept, every write that was answered 201 is there afterwards, and the
same requests succeed once the lock is gone (no lost writes).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.connection import open_database
from gateway.db.keys import create_key
from gateway.settings import Settings


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient[Any], dict[str, str], Path]]:
    db_file = tmp_path / "vlmgw.sqlite3"
    url = f"sqlite://{db_file}"
    async with open_database(url):
        key = await create_key(user_name="dora", workspaces=["dora-ws"])
    settings = Settings(data_dir=tmp_path, database_url=url, key_cache_ttl_s=60.0)
    app = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=app) as client:
        headers = {"Authorization": f"Token {key.key}"}
        assert (await client.get("/vlm/v2/dataset/", headers=headers)).status_code == 200  # key cached
        yield client, headers, db_file


class HeldLock:
    """Another process's write lock on the database file (``BEGIN EXCLUSIVE``) until ``release``."""

    def __init__(self, db_file: Path) -> None:
        self.connection = sqlite3.connect(db_file, timeout=10, isolation_level=None, check_same_thread=False)
        self.connection.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.connection.execute("COMMIT")
        self.connection.close()


async def create_dataset(client: AsyncTestClient[Any], headers: dict[str, str], name: str) -> Any:
    return await client.post("/vlm/v2/dataset/", json={"name": name}, headers=headers)


async def names(client: AsyncTestClient[Any], headers: dict[str, str]) -> set[str]:
    page = (await client.get("/vlm/v2/dataset/?page_size=100", headers=headers)).json()
    return {d["name"] for d in page["results"]}


async def test_a_short_lock_only_delays_writes(
    gateway: tuple[AsyncTestClient[Any], dict[str, str], Path],
) -> None:
    client, headers, db_file = gateway
    lock = HeldLock(db_file)
    threading.Timer(1.0, lock.release).start()  # from another thread: the test's loop may be busy
    started = time.monotonic()
    responses = await asyncio.gather(*(create_dataset(client, headers, f"short-{i}") for i in range(4)))
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert time.monotonic() - started >= 0.9  # they waited for the lock
    assert await names(client, headers) == {f"short-{i}" for i in range(4)}


async def test_a_long_lock_gives_clear_503s_and_loses_no_write(
    gateway: tuple[AsyncTestClient[Any], dict[str, str], Path],
) -> None:
    client, headers, db_file = gateway
    lock = HeldLock(db_file)
    try:
        responses = await asyncio.gather(*(create_dataset(client, headers, f"long-{i}") for i in range(2)))
    finally:
        lock.release()
    for response in responses:
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "database_unavailable" and error["type"] == "service_unavailable"
        assert "database is locked" in error["message"]
        assert response.headers["retry-after"].isdigit()
    assert await names(client, headers) == set()  # a refused write left nothing behind
    retried = await asyncio.gather(*(create_dataset(client, headers, f"long-{i}") for i in range(2)))
    assert [r.status_code for r in retried] == [201] * 2
    assert await names(client, headers) == {f"long-{i}" for i in range(2)}
