"""A fake vLLM server (aiohttp, on 127.0.0.1, in its own thread and event loop) for unit tests of logic only.

Anything that claims to work with vLLM is tested against the real server in ``tests/integration``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters.supervisor import free_port


@dataclass
class FakeVLLM:
    """Answers like vLLM's OpenAI server; ``mode`` switches failure behaviours."""

    models: list[dict[str, Any]] = field(default_factory=lambda: [{"id": "tiny", "created": 1, "root": "/m"}])
    mode: str = "ok"  # ok | timeout | reject | crash | break_stream
    reply: str = "The image is red."
    # Replies handed out one per choice, in order, before falling back to `reply` (retries, validation).
    replies: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    # LoRA adapters loaded at runtime (name -> path), every load/unload call, and a delay per load.
    loras: dict[str, str] = field(default_factory=dict)
    lora_calls: list[tuple[str, str]] = field(default_factory=list)
    load_delay_s: float = 0.0
    _runner: web.AppRunner | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve in a thread of its own, so it answers while a test's event loop is blocked."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()

        self._loop, self._thread = loop, threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start`` again (same port)."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/load_lora_adapter", self._load_lora)
        app.router.add_post("/v1/unload_lora_adapter", self._unload_lora)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _models(self, _request: web.Request) -> web.Response:
        base = self.models[0]["id"] if self.models else None
        adapters = [{"id": n, "created": 1, "root": p, "parent": base} for n, p in self.loras.items()]
        return web.json_response({"object": "list", "data": self.models + adapters})

    async def _load_lora(self, request: web.Request) -> web.Response:
        body = await request.json()
        name, path = body["lora_name"], body["lora_path"]
        self.lora_calls.append(("load", name))
        await asyncio.sleep(self.load_delay_s)
        if not os.path.isdir(path):
            return _error(404, f"No adapter found for {path}")
        if name in self.loras:
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        self.loras[name] = path
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def _unload_lora(self, request: web.Request) -> web.Response:
        name = (await request.json())["lora_name"]
        self.lora_calls.append(("unload", name))
        if self.loras.pop(name, None) is None:
            return _error(404, f"The lora adapter '{name}' cannot be found.")
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if body.get("model") not in {m["id"] for m in self.models} | set(self.loras):
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        if self.mode == "timeout":
            await asyncio.sleep(1.5)
        if self.mode == "reject":
            err = {
                "message": "This model's maximum context length is 2048 tokens.",
                "type": "BadRequestError",
            }
            return web.json_response({"error": {**err, "param": None, "code": 400}}, status=400)
        if self.mode == "crash":
            return web.json_response(
                {"error": {"message": "engine exploded", "type": "Internal"}}, status=500
            )
        if body.get("stream"):
            return await self._stream(request, body)
        return web.json_response(self._completion(body))

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        events = self._chunks(body)
        if self.mode == "break_stream":
            for event in events[:2]:
                await resp.write(event)
            assert request.transport is not None
            request.transport.close()  # the engine dies mid-stream
            return resp
        for event in events:
            await resp.write(event)
        await resp.write_eof()
        return resp

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        n = body.get("n", 1)
        choices = []
        for i in range(n):
            text = self.replies.pop(0) if self.replies else self.reply
            message = {"role": "assistant", "content": text, "tool_calls": [], "reasoning": None}
            logprobs = _char_logprobs(text) if body.get("logprobs") else None
            choices.append(
                {
                    "index": i,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                    "stop_reason": None,
                }
            )
        usage = {"prompt_tokens": 12, "completion_tokens": 5 * n, "total_tokens": 12 + 5 * n}
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "choices": choices, "usage": usage, "prompt_logprobs": None,
            "kv_transfer_params": None,
        }  # fmt: skip

    def _chunks(self, body: dict[str, Any]) -> list[bytes]:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }
        words = (self.replies.pop(0) if self.replies else self.reply).split(" ")
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
        return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def _char_logprobs(text: str) -> dict[str, Any]:
    """One token per character; digits are less certain (logprob -1.0) than other characters (-0.01)."""
    tokens = [
        {
            "token": ch,
            "logprob": -1.0 if ch.isdigit() else -0.01,
            "bytes": list(ch.encode()),
            "top_logprobs": [],
        }
        for ch in text
    ]
    return {"content": tokens}


def _error(status: int, message: str) -> web.Response:
    """An error in vLLM's shape."""
    body = {"error": {"message": message, "type": "NotFoundError" if status == 404 else "BadRequestError",
                      "param": None, "code": status}}  # fmt: skip
    return web.json_response(body, status=status)


class StubResolver:
    """A DNS resolver for the media address guard that answers from a table and records every question."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError("name not known")
        return self.table[host]
