"""Images and videos through the gateway to the real vLLM (tiny model), with the official openai client.

The session gateway allows fetching from 127.0.0.0/8 (tests only, see conftest) and hands media to its
spawned engine as local files (``--allowed-local-media-path``). The tiny model is pre-trained to caption a
solid-colour image ("The image is red."), so a right answer shows the pixels arrived intact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from tests.integration.conftest import MODEL, GatewayProcess
from tests.support.http_server import ThreadedServer
from tests.support.media import (
    data_uri,
    image_bytes,
    jpeg_with_orientation,
    png_bytes,
    png_claiming_size,
    png_data_uri,
    video_bytes,
)

pytestmark = pytest.mark.integration

VIDEO = video_bytes(seconds=4, fps=10, size=(96, 64))


@pytest.fixture(scope="module")
def media_server() -> Iterator[ThreadedServer]:
    def serve(data: bytes, content_type: str) -> Any:
        async def handler(_request: web.Request) -> web.Response:
            return web.Response(body=data, content_type=content_type)

        return handler

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/green.png")

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(body=png_bytes("red"))

    routes = {
        "/red.png": serve(png_bytes("red"), "image/png"),
        "/green.png": serve(png_bytes("green"), "application/octet-stream"),
        "/moved": moved,
        "/clip.mp4": serve(VIDEO, "video/mp4"),
        "/slow.png": slow,
    }
    with ThreadedServer(routes) as server:
        yield server


def ask(client: openai.OpenAI, *parts: dict[str, Any], **options: Any) -> Any:
    content = [*parts, {"type": "text", "text": "What colour is the image?"}]
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
        max_tokens=12,
        temperature=0,
        **options,
    )


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def video(url: str, **options: Any) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url, **options}}


@pytest.mark.parametrize(
    ("url", "colour"),
    [
        (data_uri(image_bytes("JPEG", size=(56, 56), colour="blue", quality=95), "image/jpeg"), "blue"),
        (data_uri(image_bytes("BMP", size=(56, 56), colour="green"), "image/bmp"), "green"),
        (data_uri(image_bytes("GIF", size=(56, 56), colour="red"), "image/png"), "red"),  # claimed type wrong
        (
            data_uri(image_bytes("WEBP", size=(56, 56), colour="yellow", lossless=True), "image/webp"),
            "yellow",
        ),
    ],
)
def test_image_formats_reach_the_model(client: openai.OpenAI, url: str, colour: str) -> None:
    assert ask(client, image(url)).choices[0].message.content == f"The image is {colour}."


def test_multi_image_prompt(client: openai.OpenAI) -> None:
    one = ask(client, image(png_data_uri("red")))
    three = ask(client, *(image(png_data_uri(c)) for c in ("red", "green", "blue")))
    assert three.choices[0].message.content
    assert three.usage.prompt_tokens > one.usage.prompt_tokens + 2 * 4  # two more images of >= 4 tokens


def test_url_fetched_by_the_gateway(client: openai.OpenAI, media_server: ThreadedServer) -> None:
    resp = ask(client, image(media_server.url("/red.png")))
    assert resp.choices[0].message.content == "The image is red."
    moved = ask(client, image(media_server.url("/moved")))  # a redirect on loopback, content sniffed
    assert moved.choices[0].message.content == "The image is green."


def test_exif_rotated_photo_is_accepted(client: openai.OpenAI) -> None:
    resp = ask(client, image(data_uri(jpeg_with_orientation((80, 40), 6), "image/jpeg")))
    assert resp.choices[0].message.content == "The image is blue."


def test_streamed_answer_about_a_fetched_image(client: openai.OpenAI, media_server: ThreadedServer) -> None:
    chunks = list(ask(client, image(media_server.url("/red.png")), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The image is red."


def test_video_as_frames(client: openai.OpenAI, media_server: ThreadedServer) -> None:
    two = ask(client, video(data_uri(VIDEO, "video/mp4"), num_frames=2))
    eight = ask(client, video(media_server.url("/clip.mp4")))  # default: 8 frames
    assert two.choices[0].message.content and eight.choices[0].message.content
    assert eight.usage.prompt_tokens > two.usage.prompt_tokens + 6 * 4  # six more frames, with timestamps


def test_video_native_and_request_defaults(client: openai.OpenAI) -> None:
    text_only = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What colour is the image?"}], max_tokens=4
    )
    native = ask(
        client, video(data_uri(VIDEO, "video/mp4")), extra_body={"video_options": {"mode": "native"}}
    )
    assert native.choices[0].message.content
    assert native.usage.prompt_tokens > text_only.usage.prompt_tokens
    fps = ask(client, video(data_uri(VIDEO, "video/mp4"), fps=1, start=1, end=3, mode="native"))
    assert fps.choices[0].message.content


@pytest.mark.parametrize(
    ("part", "code"),
    [
        (image("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA"), "media_corrupt"),
        (image(data_uri(png_claiming_size(40_000, 40_000))), "media_too_large"),
        (image("file:///etc/passwd"), "media_unsupported"),
        (image("http://2130706433/x.png"), "media_url_blocked"),
        (image("http://[::1]:9/x.png"), "media_url_blocked"),  # loopback, but not in the tests' allow-list
        (image("image://no-such-image"), "media_not_found"),
        (video(data_uri(png_bytes("red"), "video/mp4")), "media_unsupported"),
        (video(data_uri(VIDEO[: len(VIDEO) // 3], "video/mp4")), "media_corrupt"),
    ],
)
def test_bad_media_gets_a_400_naming_the_part(client: openai.OpenAI, part: dict[str, Any], code: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, part)
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == code, body
    assert body["param"].startswith("messages[0].content[0].")


def test_too_many_images(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, *[image(png_data_uri("red"))] * 11)
    assert isinstance(err.value.body, dict) and err.value.body["code"] == "media_too_many"


def test_unreachable_and_slow_hosts(client: openai.OpenAI, media_server: ThreadedServer) -> None:
    with pytest.raises(openai.BadRequestError) as slow:
        ask(client, image(media_server.url("/slow.png")))
    assert isinstance(slow.value.body, dict) and slow.value.body["code"] == "media_fetch_timeout"
    with pytest.raises(openai.BadRequestError) as missing:
        ask(client, image(media_server.url("/nothing-here.png")))
    assert isinstance(missing.value.body, dict) and missing.value.body["code"] == "media_unreachable"


def test_gateway_keeps_serving_and_leaves_no_handoff_files(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    assert ask(client, image(png_data_uri("blue"))).choices[0].message.content == "The image is blue."
    assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200
    assert list((gateway.data_dir / "media-handoff").iterdir()) == []
