"""What a route costs in-process before any work: a raw ASGI app, Litestar's ``@asgi`` route, its ``@post``.

    uv run python benchmarks/route_floor.py [--requests 20000] [--rounds 3]

The choice behind ``gateway/openai_api/fast.py``: the chat route's answer could skip Litestar's per-request
machinery either as a Litestar ``@asgi`` route (routing and the exception middleware stay) or as a raw ASGI
layer in front of the app. Each variant answers the same small JSON POST with the same 11-byte body; the
``@post`` route takes the body as a ``dict`` (Litestar's signature model, request and response objects).
No server and no sockets: the app is called with an ASGI scope in a loop, so what is measured is CPU per
request of the framework alone (process time), variants alternating round by round, as ratios to the raw
app in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from litestar import Litestar, Response, asgi, post
from litestar.types import Receive, Scope, Send

BODY = b'{"ok":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]


async def raw(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


@asgi("/v1/chat/completions", is_mount=False)
async def asgi_route(scope: Scope, receive: Receive, send: Send) -> None:
    await raw(scope, receive, send)


@post("/v1/chat/completions", status_code=200)
async def post_route(data: dict[str, Any]) -> Response[bytes]:
    return Response(BODY, media_type="application/json")


def scope() -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "root_path": "",
        "query_string": b"", "headers": [(b"host", b"127.0.0.1"), *HEADERS], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2), "state": {},
    }  # fmt: skip


async def per_request_us(app: Any, requests: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    for _ in range(200):  # warm-up
        await app(scope(), receive, send)
    started = time.process_time()
    for _ in range(requests):
        await app(scope(), receive, send)
    return (time.process_time() - started) / requests * 1e6


async def main(requests: int, rounds: int) -> None:
    variants = {
        "raw ASGI": raw,
        "Litestar @asgi": Litestar([asgi_route]),
        "Litestar @post": Litestar([post_route]),
    }
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, app in variants.items():
            cost = await per_request_us(app, requests)
            best[name] = min(best.get(name, cost), cost)
    print("| variant | us per request (best of rounds) | vs raw ASGI |")
    print("|---|---|---|")
    for name, cost in best.items():
        print(f"| {name} | {cost:.1f} | {cost / best['raw ASGI']:.1f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
