"""How the chat service relays the engine's stream events: raw bytes, a byte-level rename, or decoded."""

from __future__ import annotations

import msgspec
import pytest

from gateway.metrics import Metrics
from gateway.openai_api.chat import StreamRelay

USAGE = b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"tiny","choices":[],'
USAGE += b'"usage":{"prompt_tokens":7,"total_tokens":10,"completion_tokens":3}}'


def event(content: str, model: str = "tiny", extra: str = "") -> bytes:
    delta = msgspec.json.encode({"content": content}).decode()
    return (
        f'{{"id":"c","object":"chat.completion.chunk","created":1,"model":{msgspec.json.encode(model).decode()},'
        f'"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":null{extra}}}]}}'
    ).encode()


def sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


def relayed(relay: StreamRelay, block: bytes) -> tuple[bytes, bool]:
    """The relay's events for ``block``, joined, checking there is one piece per event."""
    out, done = relay.block(block)
    assert all(piece.count(b"\n\n") == 1 for piece in out)
    return b"".join(out), done


def tokens(metrics: Metrics, model: str, kind: str) -> float:
    value = metrics.registry.get_sample_value("vlmgw_tokens_total", {"model": model, "direction": kind})
    return value or 0.0


def test_events_for_the_same_model_pass_byte_for_byte() -> None:
    relay = StreamRelay("tiny", False, Metrics(), None)
    one, two = event("Hi", extra=',"stop_reason":null'), event(' "model":"x" \\')
    out, done = relayed(relay, sse(one, two))
    assert (out, done) == (sse(one, two), False)


def test_another_engine_name_is_swapped_in_the_bytes_only_at_the_top_level() -> None:
    relay = StreamRelay('task-1 "v2"', False, Metrics(), None)
    tricky = 'the text says "model":"fake" and \\"model\\":'
    out, _ = relayed(relay, sse(event(tricky, model="adapter-x")))
    chunk = msgspec.json.decode(out.removeprefix(b"data: "))
    assert chunk["model"] == 'task-1 "v2"'
    assert chunk["choices"][0]["delta"]["content"] == tricky


def test_usage_is_recorded_and_dropped_unless_asked() -> None:
    metrics = Metrics()
    out, done = relayed(
        StreamRelay("tiny", False, metrics, None), sse(event("a"), USAGE) + b"data: [DONE]\n\n"
    )
    assert done and out == sse(event("a"))
    assert tokens(metrics, "tiny", "completion") == 3

    out, _ = relayed(StreamRelay("tiny", True, metrics, None), sse(USAGE))
    usage = msgspec.json.decode(out.removeprefix(b"data: "))
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 7
    assert tokens(metrics, "tiny", "prompt") == 14


def test_done_ends_the_block_and_other_lines_are_skipped() -> None:
    relay = StreamRelay("tiny", False, Metrics(), None)
    block = b": keep-alive comment\n\n" + sse(event("x")) + b"data: [DONE]\n\n" + sse(event("after"))
    assert relayed(relay, block) == (sse(event("x")), True)


def test_an_engine_error_event_passes_as_it_is() -> None:
    error = b'{"error":{"message":"boom","type":"InternalServerError","code":500}}'
    out, done = relayed(StreamRelay("tiny", False, Metrics(), None), sse(error))
    assert (out, done) == (sse(error), False)


@pytest.mark.parametrize("wants_usage", [True, False])
def test_structured_streams_are_decoded_and_watched(wants_usage: bool) -> None:
    class Watch:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def see(self, chunk: object) -> None:
            self.seen.append(chunk.choices[0].delta.content)  # type: ignore[attr-defined]

    watch = Watch()
    relay = StreamRelay("tiny", wants_usage, Metrics(), watch)  # type: ignore[arg-type]
    out, _ = relayed(relay, sse(event("{", extra=',"stop_reason":null')))
    assert watch.seen == ["{"]
    assert b"stop_reason" not in out  # decoded into the OpenAI chunk type: vLLM-only fields dropped
