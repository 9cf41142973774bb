"""Gateway logic for chat completions in front of a fake engine: shapes, streaming relay, error mapping."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import FakeVLLM

CHAT = "/v1/chat/completions"


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **extra}


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


async def test_completion_has_openai_shape_without_vllm_fields(client: Any, fake_engine: FakeVLLM) -> None:
    resp = await client.post(CHAT, json=chat_body(n=2))
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
        "service_tier",
    }
    assert body["object"] == "chat.completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert set(body["choices"][0]) == {"index", "message", "finish_reason", "logprobs"}
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "The image is red.",
        "refusal": None,
    }
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22}


async def test_request_is_forwarded_with_only_the_fields_the_client_set(
    client: Any, fake_engine: FakeVLLM
) -> None:
    await client.post(CHAT, json=chat_body(temperature=0.5, max_tokens=7, stop=["x"], seed=3))
    sent = fake_engine.requests[-1]
    assert sent == {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "temperature": 0.5,
        "stop": ["x"],
        "seed": 3,
    }


async def test_stream_relays_chunks_and_hides_usage_unless_asked(client: Any) -> None:
    resp = await client.post(CHAT, json=chat_body(stream=True))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["choices"] for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "The image is red."
    assert "role" not in chunks[1]["choices"][0]["delta"], "null fields of vLLM deltas are dropped"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_stream_usage_chunk_when_asked(client: Any, fake_engine: FakeVLLM) -> None:
    resp = await client.post(CHAT, json=chat_body(stream=True, stream_options={"include_usage": True}))
    chunks = [json.loads(e) for e in sse_events(resp.text)[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_engine_always_asked_for_usage_so_metrics_count_tokens(
    client: Any, fake_engine: FakeVLLM
) -> None:
    await client.post(CHAT, json=chat_body(stream=True))
    assert fake_engine.requests[-1]["stream_options"] == {"include_usage": True}
    metrics = (await client.get("/metrics")).text
    assert 'vlmgw_tokens_total{direction="completion",model="tiny"} 4.0' in metrics
    assert 'vlmgw_tokens_total{direction="prompt",model="tiny"} 12.0' in metrics


async def test_stream_broken_mid_way_ends_with_error_event_and_done(
    client: Any, fake_engine: FakeVLLM
) -> None:
    fake_engine.mode = "break_stream"
    resp = await client.post(CHAT, json=chat_body(stream=True))
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "engine_unavailable"
    assert "mid-request" in error["message"]


async def test_unknown_model_is_404_model_not_found(client: Any) -> None:
    resp = await client.post(CHAT, json=chat_body(model="gpt-5"))
    assert resp.status_code == 404
    assert resp.json()["error"] == {
        "message": "The model `gpt-5` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


async def test_engine_down_is_503_with_retry_after_and_marks_engine_down(
    client: Any, fake_engine: FakeVLLM
) -> None:
    fake_engine.stop()
    resp = await client.post(CHAT, json=chat_body())
    assert resp.status_code == 503
    assert resp.headers["retry-after"].isdigit()
    assert resp.json()["error"]["code"] == "engine_unavailable"
    again = await client.post(CHAT, json=chat_body())
    assert again.status_code == 503
    assert "no engine serving `tiny` is ready" in again.json()["error"]["message"]
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"


async def test_engine_timeout_is_504(make_client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.mode = "timeout"
    async with make_client(fake_engine, request_timeout_s=0.3) as client:
        resp = await client.post(CHAT, json=chat_body())
    assert resp.status_code == 504
    assert resp.json()["error"]["type"] == "timeout"


async def test_engine_rejection_passes_its_message_as_400(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.mode = "reject"
    resp = await client.post(CHAT, json=chat_body())
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == "context_length_exceeded"
    assert "maximum context length" in err["message"]


async def test_engine_crash_is_502_not_500(client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.mode = "crash"
    resp = await client.post(CHAT, json=chat_body())
    assert resp.status_code == 502
    assert resp.json()["error"]["type"] == "engine_error"


async def test_models_lists_bases_then_adapters_with_parent(make_client: Any, fake_engine: FakeVLLM) -> None:
    fake_engine.models = [
        {"id": "lora-b", "created": 3, "parent": "tiny", "root": "/a/b"},
        {"id": "tiny", "created": 1, "root": "/m", "max_model_len": 2048},
    ]
    async with make_client(fake_engine) as client:
        body = (await client.get("/v1/models")).json()
        one = (await client.get("/v1/models/lora-b")).json()
        missing = await client.get("/v1/models/none")
    assert body["object"] == "list"
    assert [(m["id"], m["parent"]) for m in body["data"]] == [("tiny", None), ("lora-b", "tiny")]
    assert all(m["object"] == "model" for m in body["data"])
    assert one["parent"] == "tiny"
    assert missing.status_code == 404


async def test_replicas_share_load(make_client: Any, fake_engine: FakeVLLM) -> None:
    first, second = fake_engine, FakeVLLM()
    second.start()
    async with make_client(first, second) as client:
        for _ in range(4):
            assert (await client.post(CHAT, json=chat_body())).status_code == 200
        first.stop()
        for _ in range(3):
            await client.post(CHAT, json=chat_body())
        statuses = [(await client.post(CHAT, json=chat_body())).status_code for _ in range(3)]
    assert statuses == [200, 200, 200], "after one replica failed, the other one serves"
    assert len(second.requests) >= 3
    second.stop()


async def test_health_reports_engines(client: Any) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["engines"][0]["models"] == ["tiny"]
    assert body["engines"][0]["state"] == "up"


async def test_metrics_count_requests_by_route_and_status(client: Any) -> None:
    await client.post(CHAT, json=chat_body())
    await client.post(CHAT, json=chat_body(model="nope"))
    text = (await client.get("/metrics")).text
    assert 'vlmgw_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0' in text
    assert 'vlmgw_requests_total{method="POST",route="/v1/chat/completions",status="404"} 1.0' in text
    assert "vlmgw_request_duration_seconds_bucket" in text
    assert 'vlmgw_engine_up{engine="http://127.0.0.1:' in text


async def test_metrics_add_up_over_requests_on_both_paths(client: Any) -> None:
    """Each request counts once more under its route and status, and its latency is observed once more,
    for the chat fast path and for Litestar's routes alike (the label children are kept, not re-made)."""
    for _ in range(3):
        assert (await client.get("/health")).status_code == 200
    for _ in range(2):
        assert (await client.post(CHAT, json=chat_body())).status_code == 200
        refused = await client.post(CHAT, json=chat_body(), headers={"authorization": "Bearer nope"})
        assert refused.status_code == 401
    text = (await client.get("/metrics")).text
    assert 'vlmgw_requests_total{method="GET",route="/health",status="200"} 3.0' in text
    assert 'vlmgw_request_duration_seconds_count{method="GET",route="/health"} 3.0' in text
    assert 'vlmgw_requests_total{method="POST",route="/v1/chat/completions",status="200"} 2.0' in text
    assert 'vlmgw_requests_total{method="POST",route="/v1/chat/completions",status="401"} 2.0' in text
    assert 'vlmgw_request_duration_seconds_count{method="POST",route="/v1/chat/completions"} 4.0' in text
    assert 'vlmgw_tokens_total{direction="completion",model="tiny"} 10.0' in text  # 5 each
    assert 'vlmgw_tokens_total{direction="prompt",model="tiny"} 24.0' in text
