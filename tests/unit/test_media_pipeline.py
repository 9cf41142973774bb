"""The media step through the app (fake engine) and the pipeline itself: what the engine receives, errors."""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from litestar.testing import AsyncTestClient
from PIL import Image

from gateway.media.errors import MediaNotFound, MediaTooMany
from gateway.media.handoff import Handoff
from gateway.media.pipeline import MediaPipeline
from gateway.media.video import Sampling, VideoLimits, sample_video
from gateway.openai_api.protocol import ChatCompletionRequest, ImageUrlPart
from gateway.settings import Settings
from tests.fakes import FakeVLLM
from tests.support.http_server import ThreadedServer
from tests.support.media import data_uri, image_bytes, png_bytes, video_bytes

CHAT = "/v1/chat/completions"
ClientFactory = Callable[..., AsyncTestClient[Any]]


def body(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": "What is this?"}, *parts]
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **extra}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def video(url: str, **options: Any) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url, **options}}


def sent_parts(fake: FakeVLLM) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = fake.requests[-1]["messages"][0]["content"]
    return parts


def data_of(url: str) -> bytes:
    assert url.startswith("data:")
    return base64.b64decode(url.split(",", 1)[1])


@pytest.fixture
async def client(make_client: ClientFactory, fake_engine: FakeVLLM) -> AsyncIterator[Any]:
    """Decoding in threads keeps these tests fast; process isolation is tested below and in integration."""
    async with make_client(fake_engine, media_decode_isolation="thread") as test_client:
        yield test_client


@pytest.fixture
def media_server() -> Iterator[str]:
    async def png(_request: web.Request) -> web.Response:
        return web.Response(body=png_bytes("yellow"), content_type="image/png")

    with ThreadedServer({"/photo.png": png}) as server:
        yield server.url("")


async def test_images_reach_the_engine_as_checked_data_uris(client: Any, fake_engine: FakeVLLM) -> None:
    resp = await client.post(CHAT, json=body(image(data_uri(image_bytes("BMP"), "image/png"))))
    assert resp.status_code == 200, resp.text
    text, img = sent_parts(fake_engine)
    assert text == {"type": "text", "text": "What is this?"}
    assert img["image_url"]["url"].startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(data_of(img["image_url"]["url"]))).format == "PNG"


async def test_plain_base64_is_accepted_as_oxen_sends_it(client: Any, fake_engine: FakeVLLM) -> None:
    """Oxen's page shows ``"url": "<base64>"`` without a ``data:`` prefix; the content is sniffed."""
    plain = base64.b64encode(png_bytes("red")).decode()
    resp = await client.post(CHAT, json=body(image(plain)))
    assert resp.status_code == 200, resp.text
    url = sent_parts(fake_engine)[1]["image_url"]["url"]
    assert Image.open(io.BytesIO(data_of(url))).getpixel((0, 0))[:3] == (220, 30, 30)  # RGB["red"]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=", "media_unsupported"),
        ("x", "media_unsupported"),
        ("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ", "media_corrupt"),
    ],
)
async def test_plain_base64_that_is_not_media_is_a_400(
    client: Any, fake_engine: FakeVLLM, url: str, code: str
) -> None:
    resp = await client.post(CHAT, json=body(image(url)))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code
    assert fake_engine.requests == []


async def test_urls_are_fetched_by_the_gateway_never_by_the_engine(
    make_client: ClientFactory, fake_engine: FakeVLLM, media_server: str
) -> None:
    async with make_client(fake_engine, media_fetch_allow=["127.0.0.1"]) as client:  # worker processes
        resp = await client.post(CHAT, json=body(image(media_server + "/photo.png")))
    assert resp.status_code == 200, resp.text
    url = sent_parts(fake_engine)[1]["image_url"]["url"]
    assert data_of(url) == png_bytes("yellow")
    assert media_server not in msgspec.json.encode(fake_engine.requests).decode()


async def test_loopback_url_is_refused_by_default(
    client: Any, fake_engine: FakeVLLM, media_server: str
) -> None:
    resp = await client.post(CHAT, json=body(image(media_server + "/photo.png")))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "media_url_blocked"
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert "messages[0].content[1]" in error["message"] and "loopback" in error["message"]
    assert fake_engine.requests == []


@pytest.mark.parametrize(
    ("part", "code", "words"),
    [
        (image("file:///etc/passwd"), "media_unsupported", "`file:` is not accepted"),
        (image("data:image/png;base64,@@@"), "media_corrupt", "base64"),
        (image(data_uri(b"not an image at all")), "media_unsupported", "not an image"),
        (image("image://abc123"), "media_not_found", "no stored image"),
        (video(data_uri(png_bytes("red"), "video/mp4")), "media_unsupported", "not a video"),
        (video("ftp://example.invalid/v.mp4"), "media_unsupported", "`ftp:`"),
        (
            video(data_uri(video_bytes(seconds=1), "video/mp4"), num_frames=100),
            "media_too_large",
            "100 frames",
        ),
    ],
)
async def test_bad_media_is_a_400_naming_the_part(
    client: Any, fake_engine: FakeVLLM, part: dict[str, Any], code: str, words: str
) -> None:
    resp = await client.post(CHAT, json=body(part))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert error["param"].startswith("messages[0].content[1].")
    assert fake_engine.requests == []
    ok = await client.post(CHAT, json=body(image(data_uri(png_bytes("red")))))  # still serving
    assert ok.status_code == 200


async def test_too_many_images(client: Any, fake_engine: FakeVLLM) -> None:
    parts = [image(data_uri(png_bytes("red")))] * 11
    resp = await client.post(CHAT, json=body(*parts))
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "media_too_many" and "11 images" in error["message"]
    assert error["param"] == "messages[0].content[11].image_url.url"


async def test_video_in_frames_mode_becomes_timestamped_images(client: Any, fake_engine: FakeVLLM) -> None:
    resp = await client.post(CHAT, json=body(video(data_uri(video_bytes(seconds=4), "video/mp4"))))
    assert resp.status_code == 200, resp.text
    parts = sent_parts(fake_engine)
    assert parts[1]["type"] == "text" and "8 frames in order" in parts[1]["text"]
    frames = parts[2:]
    assert [p["type"] for p in frames] == ["text", "image_url"] * 8
    assert frames[0]["text"] == "Frame 1 at 0.20 s:" and frames[-2]["text"] == "Frame 8 at 3.70 s:"
    assert all(p["image_url"]["url"].startswith("data:image/jpeg") for p in frames[1::2])


async def test_native_mode_and_request_level_defaults(client: Any, fake_engine: FakeVLLM) -> None:
    clip = data_uri(video_bytes(seconds=4), "video/mp4")
    options = {"num_frames": 3, "mode": "native"}
    resp = await client.post(CHAT, json=body(video(clip, num_frames=4), video_options=options))
    assert resp.status_code == 200, resp.text
    sent = fake_engine.requests[-1]
    assert "video_options" not in sent
    (part,) = sent_parts(fake_engine)[1:]
    assert part == {"type": "video_url", "video_url": {"url": part["video_url"]["url"]}}
    assert part["video_url"]["url"].startswith("data:video/mp4;base64,")
    frames = sample_video(data_of(part["video_url"]["url"]), Sampling(num_frames=4), VideoLimits()).frames
    assert len({f.time_s for f in frames}) == 4  # the part's num_frames=4 won over the request's 3

    resp = await client.post(CHAT, json=body(video(clip), video_options={"num_frames": 3}))
    images = [p for p in sent_parts(fake_engine) if p["type"] == "image_url"]
    assert resp.status_code == 200 and len(images) == 3


async def test_sampling_options_are_validated_at_decode(client: Any) -> None:
    resp = await client.post(CHAT, json=body(video("data:,x", num_frames=2, fps=1.0)))
    assert resp.status_code == 400
    assert "either `num_frames` or `fps`" in resp.json()["error"]["message"]


async def test_streaming_requests_get_the_same_media_step(client: Any, fake_engine: FakeVLLM) -> None:
    resp = await client.post(CHAT, json=body(image(data_uri(image_bytes("GIF"))), stream=True))
    assert resp.status_code == 200 and "[DONE]" in resp.text
    assert sent_parts(fake_engine)[1]["image_url"]["url"].startswith("data:image/png;base64,")
    bad = await client.post(CHAT, json=body(image("data:,nothing"), stream=True))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages[0].content[1].image_url.url"


class MemoryImages:
    """An in-memory stored-image store keyed by (workspace, id)."""

    def __init__(self, images: dict[tuple[str | None, str], bytes]) -> None:
        self.images = images
        self.reads: list[tuple[str, str | None]] = []

    async def read(self, image_id: str, workspace: str | None) -> bytes:
        self.reads.append((image_id, workspace))
        return self.images[(workspace, image_id)]


def request(*parts: dict[str, Any]) -> ChatCompletionRequest:
    return msgspec.convert(body(*parts), ChatCompletionRequest)


async def test_stored_images_are_read_from_the_callers_workspace(tmp_path: Path) -> None:
    store = MemoryImages({("ws1", "img-1"): png_bytes("blue")})
    settings = Settings(data_dir=tmp_path, media_decode_isolation="thread")
    pipeline = MediaPipeline.from_settings(settings, stored=store)
    prepared = await pipeline.prepare(request(image("image://img-1")), workspace="ws1")
    part = prepared.request.messages[0].content[1]  # type: ignore[union-attr,index]
    assert data_of(part.image_url.url) == png_bytes("blue")  # type: ignore[union-attr]
    with pytest.raises(MediaNotFound) as missing:
        await pipeline.prepare(request(image("image://img-1")), workspace="ws2")
    assert missing.value.param == "messages[0].content[1].image_url.url"
    assert store.reads == [("img-1", "ws1"), ("img-1", "ws2")]


async def test_file_handoff_lives_for_one_request(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, media_max_videos=1, media_decode_isolation="thread")
    pipeline = MediaPipeline.from_settings(settings, handoff_folder=True)
    prepared = await pipeline.prepare(
        request(image(data_uri(png_bytes("red"))), video(data_uri(video_bytes(seconds=2), "video/mp4")))
    )
    content = prepared.request.messages[0].content
    urls = [p.image_url.url for p in content if isinstance(p, ImageUrlPart)]  # type: ignore[union-attr]
    assert len(urls) == 9 and all(u.startswith(settings.media_handoff_dir.resolve().as_uri()) for u in urls)
    files = sorted(settings.media_handoff_dir.iterdir())
    assert len(files) == 9 and files[0].stat().st_size > 0
    prepared.release()
    assert list(settings.media_handoff_dir.iterdir()) == []
    with pytest.raises(MediaTooMany):
        await pipeline.prepare(request(video("data:,a"), video("data:,b")))
    assert list(settings.media_handoff_dir.iterdir()) == []


async def test_failed_request_leaves_no_files_and_stale_files_are_swept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, media_decode_isolation="thread")
    pipeline = MediaPipeline.from_settings(settings, handoff_folder=True)
    with pytest.raises(Exception, match="not an image"):
        await pipeline.prepare(request(image(data_uri(png_bytes("red"))), image(data_uri(b"junk"))))
    assert list(settings.media_handoff_dir.iterdir()) == []
    handoff = Handoff(settings.media_handoff_dir)
    fresh, stale = settings.media_handoff_dir / "new.png", settings.media_handoff_dir / "old.png"
    fresh.write_bytes(b"x")
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert handoff.sweep() == 1 and not stale.exists() and fresh.exists()


async def test_text_only_requests_are_untouched(tmp_path: Path) -> None:
    pipeline = MediaPipeline.from_settings(Settings(data_dir=tmp_path))
    req = request()
    prepared = await pipeline.prepare(req)
    assert prepared.request.messages == req.messages and prepared.batch is None


async def test_low_detail_images_are_downscaled(client: Any, fake_engine: FakeVLLM) -> None:
    big = data_uri(image_bytes("PNG", size=(1024, 768)))
    low = {"type": "image_url", "image_url": {"url": big, "detail": "low"}}
    resp = await client.post(CHAT, json=body(low, image(big)))
    assert resp.status_code == 200, resp.text
    sizes = [Image.open(io.BytesIO(data_of(p["image_url"]["url"]))).size for p in sent_parts(fake_engine)[1:]]
    assert sizes[0][0] * sizes[0][1] <= 512 * 512 and sizes[1] == (1024, 768)
    assert sent_parts(fake_engine)[1]["image_url"]["detail"] == "low"
