"""Bad payloads against the real stack: a clear 4xx in OpenAI's shape, and the gateway keeps serving."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL

USER = [{"role": "user", "content": "hi"}]

# (case, kwargs for chat.completions.create, expected param or None)
CLIENT_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("negative max_tokens", {"messages": USER, "max_tokens": -1}, "max_tokens"),
    ("temperature out of range", {"messages": USER, "temperature": 7}, "temperature"),
    ("top_logprobs above 20", {"messages": USER, "logprobs": True, "top_logprobs": 50}, "top_logprobs"),
    ("empty messages", {"messages": []}, "messages"),
    ("unknown role", {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    (
        "audio part",
        {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        None,
    ),
    ("n above limit", {"messages": USER, "n": 1000}, "n"),
    ("penalty out of range", {"messages": USER, "presence_penalty": 3}, "presence_penalty"),
    (
        "legacy guided_choice without choices",
        {"messages": USER, "extra_body": {"guided_choice": []}},
        "guided_choice",
    ),
    ("stream_options without stream", {"messages": USER, "stream_options": {"include_usage": True}}, None),
    ("bad response_format type", {"messages": USER, "response_format": {"type": "yaml"}}, None),
    (
        "image_url not an object",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
        None,
    ),
]


@pytest.mark.parametrize(("case", "kwargs", "param"), CLIENT_CASES, ids=[c[0] for c in CLIENT_CASES])
def test_bad_request_through_openai_client(
    client: openai.OpenAI, case: str, kwargs: dict[str, Any], param: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, **kwargs)
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"
    assert body["message"]
    if param is not None:
        assert body["param"] == param


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}]',
        b'"just a string"',
        b"",
    ],
)
def test_malformed_bodies(gateway_url: str, auth_headers: dict[str, str], raw: bytes) -> None:
    resp = httpx.post(
        gateway_url + "/v1/chat/completions",
        content=raw,
        headers={**auth_headers, "content-type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_prompt_longer_than_the_model_is_a_400_from_the_engine(client: openai.OpenAI) -> None:
    long_text = "red green blue " * 2000
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long_text}], max_tokens=4
        )
    assert "engine rejected the request" in err.value.message


def test_max_tokens_beyond_context_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=USER, max_tokens=100_000)


def test_body_too_large_is_413(gateway_url: str, auth_headers: dict[str, str]) -> None:
    huge = (
        b'{"model": "tiny", "messages": [{"role": "user", "content": "' + b"x" * (65 * 1024 * 1024) + b'"}]}'
    )
    resp = httpx.post(gateway_url + "/v1/chat/completions", content=huge, headers=auth_headers, timeout=60)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


def test_gateway_still_serves_after_bad_inputs(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model=MODEL, messages=USER, max_tokens=3)
    assert resp.choices[0].message.content is not None
