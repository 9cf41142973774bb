"""vlm.run's predictions API on the real vLLM (tiny model) through the session gateway, called over HTTP as a
vlm.run script calls it: the seed's request replayed (sync and batch), every domain's answer schema-valid,
grounding, signed callbacks on a loopback receiver, other served models, and bad inputs."""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.integration.conftest import ADAPTER, API_KEY, MODEL
from tests.support.callback_receiver import CallbackReceiver
from tests.support.http_server import ThreadedServer
from tests.support.media import png_bytes, video_bytes
from tests.support.vlmrun_seed import seed_domains, seed_request

pytestmark = pytest.mark.integration

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
RED = base64.b64encode(png_bytes("red", 56)).decode()
CLIP = "data:video/mp4;base64," + base64.b64encode(video_bytes(seconds=2, fps=8, size=(64, 48))).decode()
VIDEO_DOMAINS = {"video.tv-news", "video.caption", "video.commentary"}
MAX_TOKENS = 1024  # every preset's longest answer fits (measured on the tiny model; see the report below)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[CallbackReceiver, str]]:
    hooks = CallbackReceiver()
    with hooks.serve() as server:
        yield hooks, server.url("/hook")


def answer_schema(url: str, domain: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = httpx.post(f"{url}/v1/schema", json={"domain": domain, "config": config or {}}, headers=HEADERS)
    assert resp.status_code == 200, resp.text
    schema: dict[str, Any] = resp.json()["json_schema"]
    return schema


def wait_done(url: str, prediction_id: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(f"{url}/v1/predictions/{prediction_id}", headers=HEADERS).json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"prediction {prediction_id} still {body['status']}")


def replay_seed(gateway_url: str, callback_url: str, **changes: Any) -> httpx.Response:
    """The seed's curl request with our host and key, its image and callback placeholders filled."""
    seed = seed_request()
    body = {**copy.deepcopy(seed.body), "images": [RED], "callback_url": callback_url, **changes}
    headers = {k: v.replace("<token>", API_KEY) for k, v in seed.headers.items()}
    url = seed.url.replace("https://api.vlm.run", gateway_url)
    return httpx.request(seed.method, url, json=body, headers=headers, timeout=300)


def check_signed_once(gateway_url: str, hooks: CallbackReceiver, prediction_id: str) -> dict[str, Any]:
    from gateway.predictions.webhook_secrets import HEADER, verify

    hooks.wait_for(1)
    deadline = time.monotonic() + 30
    while not hooks.for_prediction(prediction_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a second delivery would show up now
    (delivery,) = hooks.for_prediction(prediction_id)
    secret = httpx.get(f"{gateway_url}/v1/webhook-secret", headers=HEADERS).json()["secret"]
    assert verify(secret, delivery.body, delivery.headers[HEADER])
    body: dict[str, Any] = delivery.json
    return body


def test_the_seed_request_works_with_only_the_host_and_key_changed(
    gateway_url: str, receiver: tuple[CallbackReceiver, str]
) -> None:
    hooks, hook_url = receiver
    resp = replay_seed(gateway_url, hook_url)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["status"] == "completed" and out["domain"] == "aerospace.remote-sensing"
    seed_config = seed_request().body["config"]
    schema = answer_schema(gateway_url, out["domain"], seed_config)
    Draft202012Validator(schema).validate(out["response"])  # grounded: boxes in range, by the schema
    assert out["response"]["scene_description_metadata"]["confidence"] in ("hi", "med", "low")
    assert 0 <= out["confidence"]["scene_description"] <= 1
    assert out["usage"]["elements_processed"] == 1 and out["usage"]["element_type"] == "image"
    assert out["training"]["sample"]  # allow_training with session_id "<string>"
    assert check_signed_once(gateway_url, hooks, out["id"]) == {
        k: v for k, v in out.items() if k != "callback"
    }


def test_the_seed_request_in_batch_mode(gateway_url: str, receiver: tuple[CallbackReceiver, str]) -> None:
    hooks, hook_url = receiver
    resp = replay_seed(gateway_url, hook_url, batch=True)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "pending"
    done = wait_done(gateway_url, resp.json()["id"])
    assert done["status"] == "completed", done
    Draft202012Validator(answer_schema(gateway_url, done["domain"], seed_request().body["config"])).validate(
        done["response"]
    )
    assert check_signed_once(gateway_url, hooks, done["id"])["status"] == "completed"
    listed = httpx.get(f"{gateway_url}/v1/predictions", params={"limit": 5}, headers=HEADERS).json()
    assert done["id"] in {p["id"] for p in listed}


async def _predict(client: httpx.AsyncClient, domain: str) -> tuple[str, httpx.Response, float]:
    config = {"max_tokens": MAX_TOKENS, "max_retries": 0}
    if domain in VIDEO_DOMAINS:
        body: dict[str, Any] = {"url": CLIP, "domain": domain, "config": config}
        path = "/v1/video/generate"
    else:
        body, path = {"images": [RED], "domain": domain, "config": config}, "/v1/image/generate"
    started = time.monotonic()
    resp = await client.post(path, json=body)
    return domain, resp, time.monotonic() - started


async def test_every_domain_answers_valid_json_for_its_schema(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, headers=HEADERS, timeout=600) as client:
        results = await asyncio.gather(*(_predict(client, d) for d in seed_domains()))
    problems = {}
    for domain, resp, seconds in results:
        body = resp.json()
        if resp.status_code != 201 or body.get("status") != "completed":
            problems[domain] = f"HTTP {resp.status_code}: {str(body)[:300]}"
            continue
        errors = list(Draft202012Validator(answer_schema(gateway_url, domain)).iter_errors(body["response"]))
        if errors:
            problems[domain] = errors[0].message
        print(f"{domain}: {body['usage']['completion_tokens']} tokens, {seconds:.1f} s")
    assert not problems, problems
    assert len(results) == 15


def test_grounding_gives_normalised_boxes_on_each_value(gateway_url: str) -> None:
    body = {
        "images": [RED, RED],
        "domain": "image.caption",
        "config": {"grounding": True, "max_tokens": 1024},
    }
    resp = httpx.post(f"{gateway_url}/v1/image/generate", json=body, headers=HEADERS, timeout=300)
    assert resp.status_code == 201, resp.text
    answer = resp.json()["response"]
    for field in ("caption", "tags"):
        meta = answer[f"{field}_metadata"]
        assert meta["confidence"] in ("hi", "med", "low")
        for box in meta["bboxes"]:
            assert len(box["xywh"]) == 4 and all(0 <= v <= 1 for v in box["xywh"])
            assert box["page"] in (0, 1)


@pytest.mark.parametrize("model", [MODEL, ADAPTER])
def test_any_served_model_or_adapter_answers(gateway_url: str, model: str) -> None:
    body = {"images": [RED], "domain": "image.caption", "model": model, "config": {"max_tokens": 512}}
    resp = httpx.post(f"{gateway_url}/v1/image/generate", json=body, headers=HEADERS, timeout=300)
    assert resp.status_code == 201, resp.text
    Draft202012Validator(answer_schema(gateway_url, "image.caption")).validate(resp.json()["response"])


def test_a_callback_refused_once_is_retried_and_arrives_once(gateway_url: str) -> None:
    hooks = CallbackReceiver(statuses=[500])
    with hooks.serve() as server:
        hook = server.url("/hook")
        body = {"images": [RED], "domain": "image.caption", "batch": True, "callback_url": hook}
        pid = httpx.post(f"{gateway_url}/v1/image/generate", json=body, headers=HEADERS).json()["id"]
        hooks.wait_for(2, timeout_s=300)
        time.sleep(1.0)
        deliveries = hooks.for_prediction(pid)
    assert len(deliveries) == 2  # refused once, then accepted, then never again
    assert deliveries[0].body == deliveries[1].body
    state = httpx.get(f"{gateway_url}/v1/predictions/{pid}", headers=HEADERS).json()["callback"]
    assert (state["status"], state["attempts"]) == ("delivered", 2)


@pytest.mark.parametrize(
    ("changes", "status", "param"),
    [
        ({"domain": "document.nope"}, 400, "domain"),
        ({"config": {"json_schema": {"type": "object", "required": "x"}}}, 400, "config.json_schema"),
        ({"images": ["<string>"]}, 400, "images[0]"),
        ({"images": [base64.b64encode(b"GIF89a not really").decode()]}, 400, "images[0]"),
        ({"callback_url": "http://[::1]:9/hook"}, 400, "callback_url"),  # loopback, not in the allow-list
        ({"model": "no-such-model"}, 404, "model"),
    ],
)
def test_bad_inputs_are_clear_4xx(gateway_url: str, changes: dict[str, Any], status: int, param: str) -> None:
    body = {"images": [RED], "domain": "image.caption", "batch": True, **changes}
    resp = httpx.post(f"{gateway_url}/v1/image/generate", json=body, headers=HEADERS)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["param"] == param


def test_images_by_url_are_fetched_through_the_media_guard(gateway_url: str) -> None:
    from aiohttp import web

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=png_bytes("blue", 56), content_type="image/png")

    with ThreadedServer({"/blue.png": serve}) as server:
        body = {"images": [server.url("/blue.png")], "domain": "image.caption", "config": {"max_tokens": 512}}
        resp = httpx.post(f"{gateway_url}/v1/image/generate", json=body, headers=HEADERS, timeout=300)
        assert resp.status_code == 201, resp.text
        assert server.hits == ["/blue.png"]
