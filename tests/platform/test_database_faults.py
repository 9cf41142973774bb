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
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.connection import open_database
from gateway.db.keys import create_key
from gateway.settings import Settings


@asynccontextmanager
async def client_on(url: str, data_dir: Path) -> AsyncIterator[tuple[AsyncTestClient[Any], dict[str, str]]]:
    """A gateway on the database at ``url`` with one key, whose first request has cached the key (so a
    fault later hits the request's own writes, not the key lookup)."""
    async with open_database(url):
        key = await create_key(user_name="dora", workspaces=["dora-ws"])
    settings = Settings(data_dir=data_dir, database_url=url, key_cache_ttl_s=60.0)
    app = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=app) as client:
        headers = {"Authorization": f"Token {key.key}"}
        assert (await client.get("/vlm/v2/dataset/", headers=headers)).status_code == 200  # key cached
        yield client, headers


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient[Any], dict[str, str], Path]]:
    db_file = tmp_path / "vlmgw.sqlite3"
    async with client_on(f"sqlite://{db_file}", tmp_path) as (client, headers):
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


class CuttableProxy:
    """A TCP proxy on loopback in front of PostgreSQL that can stop accepting and drop every connection
    (the database "goes away" for the gateway) and come back on the same port.

    It runs its own event loop in a thread: Litestar's test client runs the app on another loop and
    blocks the test's loop while the app starts, which must not stall the proxy."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cut(), self.loop).result(10)

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def postgres_gateway(
    tmp_path: Path,
) -> AsyncIterator[tuple[AsyncTestClient[Any], dict[str, str], CuttableProxy]]:
    from tests.platform.conftest import PG_HOST, PG_PORT, PG_USER, postgres_admin

    admin = await postgres_admin()
    if admin is None:
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT}")
    name = f"vlmgw_faults_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    proxy = CuttableProxy((PG_HOST, PG_PORT))
    proxy.start()
    url = f"postgres://{PG_USER}@{proxy.url_host}/{name}"
    try:
        async with client_on(url, tmp_path) as (client, headers):
            yield client, headers, proxy
    finally:
        proxy.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_postgres_going_away_gives_clear_503s_and_loses_no_write(
    postgres_gateway: tuple[AsyncTestClient[Any], dict[str, str], CuttableProxy],
) -> None:
    client, headers, proxy = postgres_gateway
    assert (await create_dataset(client, headers, "before")).status_code == 201
    proxy.cut()
    refused = [await create_dataset(client, headers, f"during-{i}") for i in range(3)]
    for response in refused:
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "database_unavailable" and error["type"] == "service_unavailable"
        assert response.headers["retry-after"].isdigit()
    proxy.start()  # the database is back on the same address
    created, started = [], time.monotonic()
    for i in range(3):
        while (response := await create_dataset(client, headers, f"during-{i}")).status_code != 201:
            assert response.status_code == 503, response.text  # stale pooled connections, then recovered
            assert time.monotonic() - started < 10, "the gateway did not reconnect to the database"
            await asyncio.sleep(0.2)
        created.append(response.json()["name"])
    assert await names(client, headers) == {"before", "during-0", "during-1", "during-2"}
