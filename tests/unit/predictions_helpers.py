"""Shared helpers of the predictions unit tests (a fake engine; real vLLM is in tests/integration)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from adapters.engine_client import EngineClient
from adapters.pool import Engine
from gateway.app import create_app
from gateway.settings import Settings
from tests.fakes import FakeVLLM
from tests.support.fresh_sqlite import seed_database
from tests.support.media import png_bytes

GENERATE = "/v1/image/generate"
CAPTION = {"caption": "A red square.", "tags": ["red", "square"]}
FAST = {
    "predictions_poll_interval_s": 0.1,
    "callback_backoff_s": 0.1,
    "media_fetch_allow": ["127.0.0.0/8"],
}


def gateway_client(fake: FakeVLLM, data_dir: Path, **overrides: Any) -> AsyncTestClient[Any]:
    """A test client of a gateway in front of ``fake`` (like the unit conftest's, for any fixture scope)."""
    settings = Settings(data_dir=data_dir, **{"engine_poll_interval_s": 60.0, **overrides})
    if settings.database_url is None:
        seed_database(data_dir)
    engine = Engine(EngineClient(fake.url, connect_timeout_s=1.0, request_timeout_s=30.0))
    return AsyncTestClient(app=create_app(settings, engines=[engine], say=lambda _m: None))


@asynccontextmanager
async def gateway_as(fake: FakeVLLM, data_dir: Path, key: str, **overrides: Any) -> AsyncIterator[Any]:
    """``gateway_client`` started, its requests sent with ``key``."""
    async with gateway_client(fake, data_dir, **overrides) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def captioning(client: Any, fake: FakeVLLM) -> Any:
    """``client``, with ``fake`` back to answering every request with ``CAPTION``."""
    fake.reply, fake.mode = reply(CAPTION), "ok"
    return client


def png_b64(colour: str = "red") -> str:
    return base64.b64encode(png_bytes(colour, 32)).decode()


def caption_body(**extra: Any) -> dict[str, Any]:
    return {"images": [png_b64()], "domain": "image.caption", **extra}


def reply(answer: Any) -> str:
    return json.dumps(answer)


async def wait_done(
    client: Any, prediction_id: str, timeout_s: float = 20.0, **params: Any
) -> dict[str, Any]:
    """Poll GET /v1/predictions/{id} until it is completed or failed (and its callback settled, if any)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    body: dict[str, Any] = {}
    while loop.time() < deadline:
        resp = await client.get(f"/v1/predictions/{prediction_id}", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        settled = body.get("callback", {}).get("status", "delivered") != "pending"
        if body["status"] in ("completed", "failed") and settled:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"prediction {prediction_id} not done: {body}")
