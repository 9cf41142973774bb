"""`/v1` routes take a `workspace` selector as `/vlm/v2` does: query parameter, or a chat body field."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from gateway.db.connection import open_database
from gateway.db.keys import create_key
from gateway.settings import Settings
from tests.fakes import FakeVLLM
from tests.support.media import png_bytes

CHAT = "/v1/chat/completions"


def make_keys(tmp_path: Path) -> tuple[str, str, str]:
    """Alice (default workspace `home`, may also use `work`), Bob; and the id of `work`."""

    async def run() -> tuple[str, str, str]:
        async with open_database(Settings(data_dir=tmp_path).db_url):
            alice = await create_key(user_name="alice", workspaces=["home", "work"])
            bob = await create_key(user_name="bob", workspaces=["bob-ws"])
            return alice.key, bob.key, str(alice.workspaces[1].id)

    return asyncio.run(run())


def chat(image_id: str, **extra: Any) -> dict[str, Any]:
    content = [
        {"type": "text", "text": "?"},
        {"type": "image_url", "image_url": {"url": f"image://{image_id}"}},
    ]
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **extra}


async def test_v1_acts_in_the_workspace_the_request_names(
    make_client: Any, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    alice, bob, work = await asyncio.to_thread(make_keys, tmp_path)
    as_alice, as_bob = {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}
    async with make_client(fake_engine, media_decode_isolation="thread", key_cache_ttl_s=0.0) as client:
        upload = {"_base64": base64.b64encode(png_bytes("green")).decode(), "workspace": work}
        resp = await client.post("/vlm/v2/image/", json=upload, headers=as_alice)
        assert resp.status_code == 201, resp.text
        image = resp.json()["id"]
        resp = await client.post(CHAT, json=chat(image), headers=as_alice)  # the key's default workspace
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "media_not_found"
        resp = await client.post(CHAT, json=chat(image), params={"workspace": work}, headers=as_alice)
        assert resp.status_code == 200, resp.text
        resp = await client.post(CHAT, json=chat(image, workspace=work, stream=True), headers=as_alice)
        assert resp.status_code == 200 and "data: [DONE]" in resp.text, resp.text
        assert all("workspace" not in sent for sent in fake_engine.requests)  # never sent to the engine
        resp = await client.post(CHAT, json=chat(image, workspace=work), headers=as_bob)
        assert resp.status_code == 404 and resp.json()["error"]["param"] == "workspace"
        resp = await client.get("/v1/models", params={"workspace": work}, headers=as_alice)
        assert resp.status_code == 200 and resp.json()["data"]
        resp = await client.get("/v1/models", params={"workspace": "nope"}, headers=as_alice)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == "workspace"
