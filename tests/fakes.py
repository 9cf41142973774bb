"""A fake vLLM server as an ``httpx.MockTransport`` handler, for unit tests of gateway logic only.

Anything that claims to work with vLLM is tested against the real server in ``tests/integration``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class FakeVLLM:
    """Answers like vLLM's OpenAI server; ``mode`` switches failure behaviours."""

    models: list[dict[str, Any]] = field(default_factory=lambda: [{"id": "tiny", "created": 1, "root": "/m"}])
    mode: str = "ok"  # ok | down | timeout | reject | crash | break_stream | slow_ok
    reply: str = "The image is red."
    requests: list[dict[str, Any]] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/health":
            return httpx.Response(200)
        if path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": self.models})
        if path == "/v1/chat/completions":
            body = json.loads(request.content)
            self.requests.append(body)
            return self._chat(request, body)
        return httpx.Response(404, json={"error": {"message": "no route", "type": "NotFound", "code": 404}})

    def _chat(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self.mode == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if self.mode == "reject":
            err = {
                "message": "This model's maximum context length is 2048 tokens.",
                "type": "BadRequestError",
            }
            return httpx.Response(400, json={"error": {**err, "param": None, "code": 400}})
        if self.mode == "crash":
            return httpx.Response(
                500, json={"error": {"message": "engine exploded", "type": "InternalServerError"}}
            )
        if body.get("stream"):
            return httpx.Response(
                200, stream=_Stream(self._chunks(body)), headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(200, json=self._completion(body))

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        n = body.get("n", 1)
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": self.reply, "tool_calls": [], "reasoning": None},
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
                "token_ids": None,
            }
            for i in range(n)
        ]
        usage = {"prompt_tokens": 12, "completion_tokens": 5 * n, "total_tokens": 12 + 5 * n}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": usage,
            "prompt_logprobs": None,
            "kv_transfer_params": None,
        }

    def _chunks(self, body: dict[str, Any]) -> list[bytes]:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }
        words = self.reply.split(" ")
        events = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "usage": None}
        ]
        for i, word in enumerate(words):
            text = word if i == 0 else " " + word
            delta = {"role": None, "content": text, "tool_calls": None}
            events.append(
                {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}], "usage": None}
            )
        events[-1]["choices"][0]["finish_reason"] = "stop"
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words)}
            events.append({**base, "choices": [], "usage": usage})
        out = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
        if self.mode == "break_stream":
            return [*out[:2], b"BREAK"]
        return [*out, b"data: [DONE]\n\n"]


class _Stream(httpx.AsyncByteStream):
    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if part == b"BREAK":
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            yield part
