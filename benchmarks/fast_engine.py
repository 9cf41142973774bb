"""A fast stand-in for vLLM's OpenAI server, for measuring what a proxy in front of it costs.

    python benchmarks/fast_engine.py PORT [--model tiny] [--events 20]

Answers ``POST /v1/chat/completions`` at once with a canned answer shaped like vLLM 0.32's (whole, or a
stream of ``--events`` content events plus the final and usage events when ``stream_options.include_usage``
asks), ``GET /v1/models`` and ``GET /health``. It reads the whole request body (a 200 KB image included)
but does not decode images or generate anything: the point is an engine so cheap that the proxy in front
of it is what the benchmark measures. Plain asyncio (uvloop when installed), HTTP/1.1 keep-alive, loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

WORDS = ["The", " image", " is", " blue", "."]


def whole_answer(model: str, tokens: int) -> bytes:
    text = "".join(WORDS[i % len(WORDS)] for i in range(tokens))
    return json.dumps(
        {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": "length",
                    "stop_reason": None,
                }
            ],
            "usage": {"prompt_tokens": 12, "total_tokens": 12 + tokens, "completion_tokens": tokens},
            "prompt_logprobs": None,
            "kv_transfer_params": None,
        },
        separators=(",", ":"),
    ).encode()


def stream_events(model: str, events: int, usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer, as vLLM writes them (``usage: null`` only when asked)."""
    base = {
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    tail = {"usage": None} if usage else {}

    def event(choice: dict[str, object]) -> bytes:
        body = json.dumps({**base, "choices": [choice], **tail}, separators=(",", ":"))
        return b"data: " + body.encode() + b"\n\n"

    out = [
        event(
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        )
    ]
    for i in range(events - 2):
        word = WORDS[i % len(WORDS)]
        out.append(event({"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}))
    out.append(
        event({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length", "stop_reason": None})
    )
    if usage:
        final = {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 12, "total_tokens": 12 + events, "completion_tokens": events},
        }
        out.append(b"data: " + json.dumps(final, separators=(",", ":")).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Engine(asyncio.Protocol):
    def __init__(self, model: str, events: int) -> None:
        self.model = model
        self.events = events
        self.buffer = b""
        self.tasks: set[asyncio.Future[None]] = set()
        self.transport: asyncio.Transport | None = None
        self.whole = whole_answer(model, events - 2)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path = head.split(" ", 2)[:2]
            self.answer(method, path, body)

    def answer(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        if method == "POST" and path.startswith("/v1/chat/completions"):
            if b'"stream":true' in body.replace(b" ", b""):
                usage = b'"include_usage":true' in body.replace(b" ", b"")
                self.tasks.add(task := asyncio.ensure_future(self.stream(usage)))
                task.add_done_callback(self.tasks.discard)
                return
            self.send(200, self.whole)
        elif path.startswith("/v1/models"):
            card = {"id": self.model, "object": "model", "created": 1, "owned_by": "vllm",
                    "root": self.model, "parent": None, "max_model_len": 2048}  # fmt: skip
            models = {"object": "list", "data": [card]}
            self.send(200, json.dumps(models).encode())
        elif path.startswith(("/health", "/ping")):
            self.send(200, b"")
        else:
            self.send(404, b'{"error":{"message":"not found","type":"NotFoundError","code":404}}')

    def send(self, status: int, body: bytes) -> None:
        assert self.transport is not None
        reason = b"OK" if status == 200 else b"Not Found"
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (
            status, reason, len(body)
        )  # fmt: skip
        self.transport.write(head + body)

    async def stream(self, usage: bool) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for event in stream_events(self.model, self.events, usage):
            self.transport.write(chunked(event))
            await asyncio.sleep(0)  # one write per event, as a generating engine sends them
        self.transport.write(b"0\r\n\r\n")


async def serve(port: int, model: str, events: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Engine(model, events), "127.0.0.1", port, backlog=1024)
    print(f"fast stand-in engine on http://127.0.0.1:{port} ({model})", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("port", type=int)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--events", type=int, default=20, help="events per streamed answer (content + final)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.model, args.events))


if __name__ == "__main__":
    main()
