"""Bad payloads, auth and size limits: always OpenAI's error shape with a 4xx that names the problem."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import FakeVLLM

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]

BAD_PAYLOADS: list[tuple[str, Any, str | None, str]] = [
    ("not json", b"{nope", None, "not valid JSON"),
    ("truncated json", b'{"model": "tiny", "messages": [', None, "not valid JSON"),
    ("body is a list", [], None, "Expected `object`"),
    ("missing model", {"messages": MSG}, "model", "missing required field `model`"),
    ("missing messages", {"model": "tiny"}, "messages", "missing required field `messages`"),
    ("empty messages", {"model": "tiny", "messages": []}, "messages", "length >= 1"),
    (
        "max_tokens a string",
        {"model": "tiny", "messages": MSG, "max_tokens": "ten"},
        "max_tokens",
        "got `str`",
    ),
    ("max_tokens zero", {"model": "tiny", "messages": MSG, "max_tokens": 0}, "max_tokens", ">= 1"),
    ("temperature too high", {"model": "tiny", "messages": MSG, "temperature": 9}, "temperature", "<= 2.0"),
    ("top_p above one", {"model": "tiny", "messages": MSG, "top_p": 1.5}, "top_p", "<= 1.0"),
    ("n zero", {"model": "tiny", "messages": MSG, "n": 0}, "n", ">= 1"),
    (
        "unknown role",
        {"model": "tiny", "messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
        "robot",
    ),
    (
        "unknown part type",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
        },
        "messages[0].content[0].type",
        "input_audio",
    ),
    (
        "image part without url",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
        },
        "messages[0].content[0].image_url",
        "missing required field `url`",
    ),
    (
        "bad image detail",
        {
            "model": "tiny",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "x", "detail": "4k"}}],
                }
            ],
        },
        "messages[0].content[0].image_url.detail",
        "4k",
    ),
    (
        "legacy guided_json field that is not a schema",
        {"model": "tiny", "messages": MSG, "guided_json": 5},
        "guided_json",
        "Expected",
    ),
    (
        "top_logprobs without logprobs",
        {"model": "tiny", "messages": MSG, "top_logprobs": 2},
        None,
        "requires `logprobs: true`",
    ),
    ("stop too many", {"model": "tiny", "messages": MSG, "stop": ["a"] * 17}, "stop", None),
    (
        "bad response_format",
        {"model": "tiny", "messages": MSG, "response_format": {"type": "xml"}},
        None,
        "xml",
    ),
    (
        "content null for user",
        {"model": "tiny", "messages": [{"role": "user", "content": None}]},
        None,
        "null",
    ),
]


@pytest.mark.parametrize(
    ("case", "payload", "param", "needle"), BAD_PAYLOADS, ids=[c[0] for c in BAD_PAYLOADS]
)
async def test_bad_payload_is_400_naming_the_field(
    client: Any, fake_engine: FakeVLLM, case: str, payload: Any, param: str | None, needle: str | None
) -> None:
    if isinstance(payload, bytes):
        resp = await client.post(CHAT, content=payload, headers={"content-type": "application/json"})
    else:
        resp = await client.post(CHAT, json=payload)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param, err
    if needle is not None:
        assert needle in err["message"], err
    assert "Traceback" not in resp.text
    assert fake_engine.requests == [], "a bad request must never reach the engine"


async def test_unknown_route_and_method_have_openai_shape(client: Any) -> None:
    missing = await client.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await client.delete("/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "invalid_request_error"


async def test_body_too_large_is_413(make_client: Any, fake_engine: FakeVLLM) -> None:
    async with make_client(fake_engine, max_body_bytes=1000) as client:
        resp = await client.post(
            CHAT, json={"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]}
        )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Basic c2VjcmV0", 401),
        ("Bearer", 401),
        ("Bearer s3cret", 200),
        ("Token s3cret", 200),
        ("bearer s3cret", 200),
    ],
)
async def test_api_keys(make_client: Any, fake_engine: FakeVLLM, header: str | None, status: int) -> None:
    headers = {"authorization": header} if header else {}
    async with make_client(fake_engine, api_keys=["s3cret"]) as client:
        chat = await client.post(CHAT, json={"model": "tiny", "messages": MSG}, headers=headers)
        models = await client.get("/v1/models", headers=headers)
        health = await client.get("/health")
    assert chat.status_code == status
    assert models.status_code == status
    assert health.status_code == 200, "health stays open for probes"
    if status == 401:
        assert chat.json()["error"]["code"] == "invalid_api_key"


async def test_no_keys_configured_means_open(client: Any) -> None:
    resp = await client.post(CHAT, json={"model": "tiny", "messages": MSG})
    assert resp.status_code == 200
