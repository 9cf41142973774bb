"""Database keys and static keys on the OpenAI routes; the open mode ends once a database key exists."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.db.connection import open_database
from gateway.db.keys import create_key, revoke_key
from gateway.settings import Settings
from tests.fakes import FakeVLLM

CHAT = "/v1/chat/completions"
BODY = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}


def db_call(tmp_path: Path, work: Any) -> Any:
    """Run ``work()`` on the gateway's default database (SQLite in the data dir), like `vlmgw keys`."""

    async def run() -> Any:
        async with open_database(Settings(data_dir=tmp_path).db_url):
            return await work()

    return asyncio.run(run())


async def make_key(tmp_path: Path) -> str:
    created = await asyncio.to_thread(db_call, tmp_path, lambda: create_key(user_name="dev", name="t"))
    return str(created.key)


async def test_database_key_works_for_chat_and_static_keys_still_do(
    make_client: Any, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    key = await make_key(tmp_path)
    async with make_client(fake_engine, api_keys=["s3cret"]) as client:
        for header in (f"Bearer {key}", f"Token {key}", "Bearer s3cret", "Token s3cret"):
            response = await client.post(CHAT, json=BODY, headers={"Authorization": header})
            assert response.status_code == 200, (header, response.text)
        for header in (None, f"Bearer {key}x", "Bearer s3cretx"):
            headers = {"Authorization": header} if header else {}
            response = await client.post(CHAT, json=BODY, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_api_key"


async def test_open_until_the_first_database_key_then_closed_even_after_revoking(
    make_client: Any, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    async with make_client(fake_engine, key_cache_ttl_s=0.0) as client:
        assert (await client.post(CHAT, json=BODY)).status_code == 200  # no keys anywhere: open
    key = await make_key(tmp_path)
    async with make_client(fake_engine, key_cache_ttl_s=0.0) as client:
        assert (await client.post(CHAT, json=BODY)).status_code == 401
        assert (
            await client.post(CHAT, json=BODY, headers={"Authorization": f"Bearer {key}"})
        ).status_code == 200
        await asyncio.to_thread(db_call, tmp_path, lambda: revoke_key(key))
        assert (
            await client.post(CHAT, json=BODY, headers={"Authorization": f"Bearer {key}"})
        ).status_code == 401
        assert (await client.post(CHAT, json=BODY)).status_code == 401  # revoking all keys does not reopen
