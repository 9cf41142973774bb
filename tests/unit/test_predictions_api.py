"""/v1/image/generate and friends in front of a fake engine: request shapes, the answer, bad inputs.

Logic only; every domain on real vLLM is tests/integration/test_predictions.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.errors import BadRequestError
from gateway.media.address import AddressGuard
from gateway.predictions.callbacks import CallbackSender
from tests.fakes import FakeVLLM
from tests.support.http_server import ThreadedServer
from tests.support.media import data_uri, png_bytes, video_bytes
from tests.support.vlmrun_seed import seed_request
from tests.unit.predictions_helpers import (
    CAPTION,
    FAST,
    GENERATE,
    caption_body,
    captioning,
    gateway_as,
    gateway_client,
    png_b64,
    reply,
)

KEY = "unit-key"


@pytest.fixture(scope="module")
def engine() -> Iterator[FakeVLLM]:
    fake = FakeVLLM(models=[{"id": "tiny", "created": 1, "root": "/m", "max_model_len": 2048}])
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
async def api_app(engine: FakeVLLM, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """One gateway for the module (starting one costs seconds); tests set the engine's reply they need."""
    data_dir = tmp_path_factory.mktemp("predictions")
    async with gateway_as(engine, data_dir, KEY, api_keys=[KEY], **FAST) as client:
        yield client


@pytest.fixture
def api(api_app: Any, engine: FakeVLLM) -> Any:
    return captioning(api_app, engine)


@pytest.fixture
def fake_engine(engine: FakeVLLM) -> FakeVLLM:
    return engine


async def test_a_caption_prediction_answers_201_in_vlmruns_shape(api: Any, fake_engine: FakeVLLM) -> None:
    resp = await api.post(GENERATE, json=caption_body())
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"id", "created_at", "completed_at", "response", "status", "usage", "domain"}
    assert body["status"] == "completed" and body["response"] == CAPTION
    assert body["usage"] == {
        "elements_processed": 1, "element_type": "image", "credits_used": 0, "prompt_tokens": 12,
        "completion_tokens": 5,
    }  # fmt: skip
    assert body["created_at"].endswith("Z") and body["completed_at"] >= body["created_at"]
    sent = fake_engine.requests[-1]
    assert sent["model"] == "tiny"  # vlm-1: the default base model
    image, text = sent["messages"][0]["content"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    assert text["text"].startswith("Write a one-sentence caption")
    assert "structured_outputs" in sent and "response_format" not in sent
    assert (sent["max_tokens"], sent["temperature"]) == (2048, 0.0)  # 4096 asked: capped at the context
    assert (await api.get(f"/v1/predictions/{body['id']}")).json() == body


async def test_images_as_raw_base64_data_uris_and_urls_go_in_order(api: Any, fake_engine: FakeVLLM) -> None:
    blue = png_bytes("blue", 20)

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=blue, content_type="image/png")

    with ThreadedServer({"/blue.png": serve}) as server:
        images = [png_b64("red"), data_uri(png_bytes("green", 24)), server.url("/blue.png")]
        resp = await api.post(GENERATE, json=caption_body(images=images))
    assert resp.status_code == 201, resp.text
    assert resp.json()["usage"]["elements_processed"] == 3
    parts = fake_engine.requests[-1]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "image_url", "text"]
    assert data_uri(blue) == parts[2]["image_url"]["url"]


async def test_config_sets_prompt_schema_sampling_and_detail(api: Any, fake_engine: FakeVLLM) -> None:
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    fake_engine.reply = '{"count": 3}'
    config = {"prompt": "How many?", "json_schema": schema, "max_tokens": 64, "temperature": 0.5,
              "detail": "lo", "max_retries": 0}  # fmt: skip
    resp = await api.post(GENERATE, json=caption_body(config=config))
    assert resp.status_code == 201, resp.text
    assert resp.json()["response"] == {"count": 3}
    sent = fake_engine.requests[-1]
    assert sent["messages"][0]["content"][-1]["text"].startswith("How many? Answer in JSON that fits")
    assert (sent["max_tokens"], sent["temperature"]) == (64, 0.5)
    assert sent["messages"][0]["content"][0]["image_url"]["detail"] == "low"


async def test_confidence_and_grounding(api: Any, fake_engine: FakeVLLM) -> None:
    box = {"bboxes": [{"xywh": [0.1, 0.1, 0.5, 0.5], "page": 0}]}
    fake_engine.reply = reply({"caption": "A red square.", "caption_metadata": box, "tags": ["red"],
                               "tags_metadata": box})  # fmt: skip
    resp = await api.post(GENERATE, json=caption_body(config={"confidence": True, "grounding": True}))
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["response"]["caption_metadata"]["bboxes"] == box["bboxes"]
    assert body["response"]["caption_metadata"]["confidence"] in ("hi", "med", "low")
    assert 0 < body["confidence"]["caption"] <= 1 and "tags[0]" in body["confidence"]
    assert fake_engine.requests[-1]["logprobs"] is True


async def test_a_grounded_answer_that_breaks_the_box_bounds_is_never_returned(
    api: Any, fake_engine: FakeVLLM
) -> None:
    bad = {"bboxes": [{"xywh": [0.1, 0.1, 1.5, 0.5], "page": 0}]}
    fake_engine.reply = reply({"caption": "c", "caption_metadata": bad, "tags": [], "tags_metadata": bad})
    resp = await api.post(GENERATE, json=caption_body(config={"grounding": True, "max_retries": 1}))
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "invalid_structured_output"
    listed = (await api.get("/v1/predictions", params={"limit": 1})).json()
    assert listed[0]["status"] == "failed" and listed[0]["error"]["code"] == "invalid_structured_output"


def _with(**changes: Any) -> dict[str, Any]:
    body = caption_body()
    for key, value in changes.items():
        if "__" in key:
            outer, inner = key.split("__")
            body[outer] = {**body.get(outer, {}), inner: value}
        else:
            body[key] = value
    return body


BAD_INPUTS = [
    (_with(domain="document.nothing"), 400, "domain", "unknown_domain"),
    (_with(domain="video.caption"), 400, "domain", "domain_media_mismatch"),
    (_with(config__json_schema={"type": "object", "properties": []}), 400, "config.json_schema", None),
    (_with(config__gql_stmt="{ caption }"), 400, "config.gql_stmt", None),
    (_with(config__max_retries=9), 400, "config.max_retries", None),
    (_with(config__detail="ultra"), 400, "config.detail", None),
    (_with(config__tools=[]), 400, "config", None),
    (_with(images=[]), 400, "images", None),
    (_with(images=["<string>"]), 400, "images[0]", "media_corrupt"),
    (_with(images=[png_b64(), "aGVsbG8="]), 400, "images[1]", "media_unsupported"),
    (_with(images=["ftp://example.com/a.png"]), 400, "images[0]", "media_corrupt"),
    (_with(images=[png_b64()] * 11), 400, "images", "media_too_many"),
    (_with(callback_url="<string>"), 400, "callback_url", "callback_url_blocked"),
    (_with(callback_url="ftp://127.0.0.1/hook"), 400, "callback_url", "callback_url_blocked"),
    (_with(metadata__environment="test"), 400, "metadata.environment", None),
    (_with(created_at="yesterday"), 400, "created_at", None),
    (_with(model="no-such-model"), 404, "model", "model_not_found"),
]


@pytest.mark.parametrize(("body", "status", "param", "code"), BAD_INPUTS)
async def test_bad_inputs_are_clear_4xx_naming_the_field(
    api: Any, fake_engine: FakeVLLM, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    before = len(fake_engine.requests)
    stored = (await api.get("/v1/predictions", params={"limit": 1000})).json()
    resp = await api.post(GENERATE, json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code
    assert len(fake_engine.requests) == before  # refused before the engine was asked
    assert (await api.get("/v1/predictions", params={"limit": 1000})).json() == stored  # nothing stored


async def test_a_loopback_callback_is_refused_unless_the_allow_list_opens_it(
    fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    async with gateway_client(fake_engine, tmp_path) as client:  # no VLMGW_MEDIA_FETCH_ALLOW
        for url in ("http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://2130706433/hook"):
            resp = await client.post(GENERATE, json=caption_body(callback_url=url, batch=True))
            assert resp.status_code == 400, url
            assert resp.json()["error"]["param"] == "callback_url"
            assert "VLMGW_MEDIA_FETCH_ALLOW" in resp.json()["error"]["message"] or "unusual" in resp.text


class StubResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host: str, port: int) -> list[str]:
        return self.answers[host]


@pytest.mark.parametrize(
    ("url", "answers"),
    [
        ("http://hooks.example.com/x", ["10.0.0.5"]),
        ("https://hooks.example.com/x", ["93.184.216.34", "192.168.1.2"]),
        ("http://hooks.example.com/x", ["169.254.169.254"]),
        ("http://metadata.google.internal/x", ["8.8.8.8"]),
        ("http://hooks.example.com/x", ["::ffff:10.0.0.1"]),
    ],
)
async def test_callback_hosts_resolving_to_private_addresses_are_refused(
    url: str, answers: list[str]
) -> None:
    """Resolver stubbed: no packet leaves; the same guard as media fetching decides."""
    host = url.split("/")[2]
    sender = CallbackSender(AddressGuard(resolver=StubResolver({host: answers})))
    with pytest.raises(BadRequestError) as caught:
        await sender.check_url(url)
    assert caught.value.param == "callback_url"
    public = CallbackSender(AddressGuard(resolver=StubResolver({"hooks.example.com": ["93.184.216.34"]})))
    await public.check_url("https://hooks.example.com/x")  # a public address passes


async def test_domains_and_schema_routes(api: Any) -> None:
    domains = (await api.get("/v1/domains")).json()
    assert {"domain": "video.caption", "description": domains[-3]["description"], "media": "video"} in domains
    resp = await api.post("/v1/schema", json={"domain": "image.caption", "config": {"grounding": True}})
    assert resp.status_code == 200, resp.text
    schema = resp.json()
    assert set(schema) == {
        "domain",
        "description",
        "schema_version",
        "schema_hash",
        "gql_stmt",
        "json_schema",
    }
    assert "caption_metadata" in schema["json_schema"]["properties"]
    plain = (await api.post("/v1/schema", json={"domain": "image.caption"})).json()
    assert plain["schema_hash"] != schema["schema_hash"]
    assert (await api.post("/v1/schema", json={"domain": "nope.nope"})).status_code == 400


async def test_the_seed_request_replayed_with_a_fake_engine(api: Any, fake_engine: FakeVLLM) -> None:
    """The seed's body as written, the image and callback placeholders filled (real vLLM: integration)."""
    seed = seed_request()
    body = {**seed.body, "images": [png_b64()], "callback_url": None}
    box = {"bboxes": [{"xywh": [0, 0, 1, 1], "page": 0}]}
    answer = {"scene_description": "fields", "land_cover": "agricultural", "objects": ["road"],
              "cloud_cover_percent": 5}  # fmt: skip
    fake_engine.reply = reply(
        {k2: v2 for k, v in answer.items() for k2, v2 in ((k, v), (k + "_metadata", box))}
    )
    headers = {k: v.replace("<token>", KEY) for k, v in seed.headers.items()}
    resp = await api.post(seed.url.replace("https://api.vlm.run", ""), json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["status"] == "completed" and out["response"]["land_cover"] == "agricultural"
    assert out["training"]["sample"]  # allow_training with a session_id stored it
    assert fake_engine.requests[-1]["messages"][0]["content"][-1]["text"].startswith("<string>")


async def test_video_generate_samples_frames_through_the_media_step(api: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.reply = reply({"caption": "grey", "scenes": [], "tags": []})
    clip = "data:video/mp4;base64," + base64.b64encode(video_bytes(seconds=1.0)).decode()
    resp = await api.post("/v1/video/generate", json={"url": clip, "domain": "video.caption"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["usage"]["element_type"] == "video"
    parts = fake_engine.requests[-1]["messages"][0]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == 8  # the default frame count, as ordered images
    assert parts[0]["text"].startswith("Video (")


BROKEN_MP4 = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 200).decode()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"file_id": "file_abc", "domain": "video.caption"}, "file_id"),
        ({"domain": "video.caption"}, "url"),
        ({"url": "data:video/mp4;base64,AAAA", "domain": "video.caption"}, "url"),
        ({"url": BROKEN_MP4, "domain": "video.caption"}, "url"),  # looks like an MP4, fails to decode
        ({"url": "x", "domain": "image.caption"}, "domain"),
        ({"url": "x", "domain": "video.caption", "metadata": {"session_id": "s"}}, "metadata.session_id"),
    ],
)
async def test_bad_video_requests_are_400s(api: Any, body: dict[str, Any], param: str) -> None:
    resp = await api.post("/v1/video/generate", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


async def test_unknown_prediction_is_404(api: Any) -> None:
    for pid in ("nope", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"):
        resp = await api.get(f"/v1/predictions/{pid}")
        assert resp.status_code == 404 and resp.json()["error"]["param"] == "id"


def test_json_helper_round_trips() -> None:
    assert json.loads(reply(CAPTION)) == CAPTION
