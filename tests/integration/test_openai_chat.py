"""Chat completions through the gateway against real vLLM, with the official openai client, sync and async."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL, stop_gateway
from tests.support.media import png_data_uri
from tests.support.session_gateway import start_engine_gateway
from tests.support.slow_engine import slow_engine


def image_question(colour: str, question: str = "What colour is the image?") -> list[Any]:
    parts = [
        {"type": "image_url", "image_url": {"url": png_data_uri(colour)}},
        {"type": "text", "text": question},
    ]
    return [{"role": "user", "content": parts}]


def ask_colour(
    client: openai.OpenAI | openai.AsyncOpenAI, colour: str, max_tokens: int = 12, **options: Any
) -> Any:
    """The image question about a ``colour`` image, answered greedily (the tiny model names the colour);
    ``options`` are further request fields. An ``AsyncOpenAI`` client gives the awaitable."""
    return client.chat.completions.create(
        model=MODEL, messages=image_question(colour), max_tokens=max_tokens, temperature=0, **options
    )


def test_text_chat(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert resp.object == "chat.completion"
    assert resp.model == MODEL
    assert resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.role == "assistant"
    assert isinstance(resp.choices[0].message.content, str)
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage is not None and resp.usage.completion_tokens <= 8
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


@pytest.mark.parametrize("colour", ["red", "blue", "green"])
def test_image_data_uri_reaches_the_model(client: openai.OpenAI, colour: str) -> None:
    resp = ask_colour(client, colour)
    assert resp.choices[0].message.content == f"The image is {colour}."
    assert resp.choices[0].finish_reason == "stop"


async def test_async_image_chat(aclient: openai.AsyncOpenAI) -> None:
    resp = await ask_colour(aclient, "yellow")
    assert resp.choices[0].message.content == "The image is yellow."


def test_system_and_assistant_turns(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You describe images."},
        *image_question("red"),
        {"role": "assistant", "content": "The image is red."},
        {"role": "user", "content": [{"type": "text", "text": "And again?"}]},
    ]
    resp = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5)
    assert resp.choices[0].message.content is not None


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    stream = ask_colour(client, "blue", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The image is blue."
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None and usage_chunk.usage.completion_tokens >= 5
    assert all(c.usage is None for c in chunks[:-1])


async def test_async_streaming_without_usage(aclient: openai.AsyncOpenAI) -> None:
    stream = await ask_colour(aclient, "green", stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The image is green."
    assert all(c.choices for c in chunks), "no usage-only chunk unless asked"


def test_stream_is_relayed_as_it_is_generated(engine_url: str, tmp_path: Path) -> None:
    """Events leave the gateway as the engine sends them, not as one buffered body. The tiny model's whole
    stream reaches a client in one burst at its end on two cores, so the session's vLLM answers through a
    stand-in that sends its events 50 ms apart, as a larger model would; our gateway is in front of it."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "stream": True}
    body |= {"max_tokens": 12, "min_tokens": 12}
    with slow_engine(engine_url, event_gap_s=0.05) as paced:
        gw = start_engine_gateway(tmp_path, paced.url(""), "relay-key")
        try:
            arrivals = []
            with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body,
                              headers={"Authorization": "Bearer relay-key"}, timeout=60) as resp:  # fmt: skip
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                for raw in resp.iter_raw():
                    arrivals += [raw.count(b"data: ")]
        finally:
            stop_gateway(gw)
    assert sum(arrivals) >= 12 + 1  # the 12 tokens' events and [DONE] at least: all relayed
    assert len([n for n in arrivals if n]) >= 10, f"expected the events one by one, got {arrivals}"


def test_n_two_choices(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=MODEL, messages=image_question("red"), max_tokens=6, n=2, temperature=1.0, seed=7
    )
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.message.content for c in resp.choices)


def test_logprobs(client: openai.OpenAI) -> None:
    resp = ask_colour(client, "red", max_tokens=6, logprobs=True, top_logprobs=2)
    content = resp.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == resp.usage.completion_tokens  # type: ignore[union-attr]
    assert content[0].token == "The"
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)


def test_stop_sequence(client: openai.OpenAI) -> None:
    resp = ask_colour(client, "red", stop=[" is"])
    assert resp.choices[0].message.content == "The image"
    assert resp.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_repeatable(client: openai.OpenAI) -> None:
    kwargs: Any = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    first = client.chat.completions.create(**kwargs, temperature=1.0, seed=123, top_p=0.9)
    second = client.chat.completions.create(**kwargs, temperature=1.0, seed=123, top_p=0.9)
    assert first.choices[0].message.content == second.choices[0].message.content


def test_penalties_and_user_are_accepted(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model=MODEL,
        messages=image_question("red"),
        max_completion_tokens=6,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        user="someone",
        response_format={"type": "text"},
    )
    assert resp.usage is not None and resp.usage.completion_tokens <= 6


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert MODEL in ids
    assert client.models.retrieve(MODEL).id == MODEL


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "model_not_found"
    assert err.value.body["param"] == "model"  # type: ignore[index]


def test_wrong_key_is_401(gateway_url: str) -> None:
    bad = openai.OpenAI(base_url=gateway_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.models.list()
    assert err.value.code == "invalid_api_key"


def test_metrics_after_traffic(client: openai.OpenAI, gateway_url: str) -> None:
    client.chat.completions.create(model=MODEL, messages=image_question("red"), max_tokens=4)
    text = httpx.get(gateway_url + "/metrics").text
    assert 'vlmgw_requests_total{method="POST",route="/v1/chat/completions",status="200"}' in text
    assert 'vlmgw_tokens_total{direction="completion",model="tiny"}' in text
    assert "vlmgw_engine_up" in text and "} 1.0" in text
