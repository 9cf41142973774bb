"""The platform API in the running gateway with the real vLLM: a key made by `vlmgw keys create` calls chat,
an image uploaded by URL (through the SSRF-guarded fetcher, loopback allowed in this session) is stored,
and ``image://ID`` in a chat request uses it: the tiny model names its colour."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from tests.integration.conftest import MODEL, GatewayProcess, keys_cli
from tests.support.http_server import ThreadedServer
from tests.support.media import png_bytes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def picture_server() -> Iterator[ThreadedServer]:
    async def red(_request: web.Request) -> web.Response:
        return web.Response(body=png_bytes("red"), content_type="image/png")

    with ThreadedServer({"/red.png": red}) as server:
        yield server


def test_database_key_uploads_by_url_and_chats_about_the_stored_image(
    gateway: GatewayProcess, gateway_url: str, picture_server: ThreadedServer
) -> None:
    key = keys_cli(gateway, "create", "--user", "integration", "--workspace", "it-ws")
    headers = {"Authorization": f"Token {key}"}
    upload = httpx.post(
        f"{gateway_url}/vlm/v2/image/",
        json={"_url": picture_server.url("/red.png")},
        headers=headers,
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    image: dict[str, Any] = upload.json()
    assert (image["format"], image["width"], image["height"]) == ("PNG", 56, 56)

    client = openai.OpenAI(base_url=gateway_url + "/v1", api_key=key, max_retries=0, timeout=120)
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"image://{image['id']}"}},
            {"type": "text", "text": "What colour is the image?"},
        ]}],  # type: ignore[misc,list-item]
        max_tokens=12, temperature=0,
    )  # fmt: skip
    assert "red" in (answer.choices[0].message.content or "")

    other = keys_cli(gateway, "create", "--user", "someone-else", "--workspace", "other-ws")
    stranger = openai.OpenAI(base_url=gateway_url + "/v1", api_key=other, max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as err:  # another workspace's image does not exist for it
        stranger.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"image://{image['id']}"}},
            ]}],  # type: ignore[misc,list-item]
            max_tokens=4,
        )  # fmt: skip
    assert isinstance(err.value.body, dict) and err.value.body["code"] == "media_not_found"

    keys_cli(gateway, "revoke", key[:19])
    deadline = time.monotonic() + 20  # a verified key is trusted for key_cache_ttl_s (10 s) after revoking
    with pytest.raises(openai.AuthenticationError):
        while time.monotonic() < deadline:
            client.models.list()
            time.sleep(1)
