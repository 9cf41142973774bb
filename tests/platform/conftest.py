"""Platform API fixtures: the gateway in-process (no engine) on SQLite, and on PostgreSQL when reachable.

Every test module here runs once per database backend (``backend`` fixture). PostgreSQL: a uniquely named
database is created on 127.0.0.1:5432 (trust auth, maintenance database ``test``) for the run and dropped
after it; without a server there, those tests skip and say why.
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from PIL import Image

from gateway.app import create_app
from gateway.db.connection import open_database
from gateway.db.keys import create_key
from gateway.settings import Settings

PG_HOST, PG_PORT, PG_USER, PG_MAINTENANCE_DB = "127.0.0.1", 5432, "postgres", "test"


async def postgres_admin() -> Any:
    """A connection to the maintenance database, or None when no server answers."""
    import asyncpg

    try:
        return await asyncio.wait_for(
            asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_MAINTENANCE_DB), 3
        )
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return None


@asynccontextmanager
async def scratch_database(backend: str, sqlite_file: Path, prefix: str, ran: str) -> AsyncIterator[str]:
    """A fresh, empty database URL on ``backend`` ("sqlite" or "postgres").

    PostgreSQL: a uniquely named database (``prefix`` + random), dropped afterwards; without a server the
    test skips, saying what ``ran`` instead.
    """
    if backend == "sqlite":
        yield f"sqlite://{sqlite_file}"
        return
    admin = await postgres_admin()
    if admin is None:
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT} (database {PG_MAINTENANCE_DB}); {ran}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A fresh, empty database URL for this session's backend."""
    sqlite_file = tmp_path_factory.mktemp("sqlite") / "platform.sqlite3"
    async with scratch_database(request.param, sqlite_file, "vlmgw_test", "SQLite tests ran") as url:
        yield url


@dataclass(frozen=True)
class Keys:
    """Two users with a workspace each (A, B), a second key for A, and a workspace A may also use."""

    a: str
    a2: str
    b: str
    ws_a: str
    ws_b: str
    ws_shared: str


@pytest.fixture(scope="session")
async def keys(db_url: str) -> Keys:
    async with open_database(db_url):
        a = await create_key(user_name="alice", workspaces=["alice-ws", "alice-shared"], name="first")
        a2 = await create_key(user_name="alice", workspaces=["alice-ws"], name="second")
        b = await create_key(user_name="bob", workspaces=["bob-ws"])
    return Keys(
        a=a.key, a2=a2.key, b=b.key, ws_a=str(a.workspaces[0].id), ws_b=str(b.workspaces[0].id),
        ws_shared=str(a.workspaces[1].id),
    )  # fmt: skip


@pytest.fixture(scope="session")
async def store_dir(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway's data directory (one per database backend, like a deployment's shared store)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
async def client(db_url: str, keys: Keys, store_dir: Path) -> AsyncIterator[AsyncTestClient[Any]]:
    """The gateway (no engine) on ``db_url``; requests carry no key unless a test sets one."""
    settings = Settings(data_dir=store_dir, database_url=db_url, key_cache_ttl_s=0.0)
    app = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


def auth(key: str, scheme: str = "Token") -> dict[str, str]:
    return {"Authorization": f"{scheme} {key}"}


def png(
    colour: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (32, 24), fmt: str = "PNG"
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def error(response: Any, status: int = 400) -> dict[str, Any]:
    """The OpenAI-shaped error body of ``response``, checked to have ``status`` and every field."""
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["error"]
    assert set(detail) >= {"message", "type", "param", "code"}
    return detail


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Api:
    """Small helpers to build objects through the API as one key."""

    def __init__(self, client: AsyncTestClient[Any], key: str) -> None:
        self.client = client
        self.headers = auth(key)

    async def post(self, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = await self.client.post(path, json=body, headers=self.headers)
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    async def dataset(self, **fields: Any) -> dict[str, Any]:
        return await self.post("/vlm/v2/dataset/", {"name": "My Training Dataset", **fields})

    async def task(self, **fields: Any) -> dict[str, Any]:
        return await self.post("/vlm/v2/task/", {"name": "My Custom Task", **fields})

    async def variable(self, dataset: str, **fields: Any) -> dict[str, Any]:
        return await self.post("/vlm/v2/variable/", {"dataset": dataset, **fields})

    async def image(self, colour: tuple[int, int, int] = (255, 0, 0), **fields: Any) -> dict[str, Any]:
        return await self.post("/vlm/v2/image/", {"_base64": b64(png(colour)), **fields})

    async def sample(self, dataset: str, **fields: Any) -> dict[str, Any]:
        return await self.post("/vlm/v2/sample/", {"dataset": dataset, **fields})
