"""A bare pass-through HTTP proxy: the floor for any Python gateway on the same server and client stack.

    python benchmarks/bare_proxy.py PORT ENGINE_URL

A raw ASGI app under uvicorn (the gateway's server, same defaults: uvloop and httptools when installed)
that forwards every request's method, path and body to ``ENGINE_URL`` with aiohttp (the gateway's engine
client) over kept-alive connections and relays the answer's status and body as the bytes arrive. No
authentication, no parsing, no checks, no rewriting: whatever a real gateway does costs on top of this.
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn

Scope = dict[str, Any]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class BareProxy:
    def __init__(self, engine_url: str) -> None:
        self.engine_url = engine_url.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode() not in HOP_BY_HOP}
        assert self.session is not None
        path = scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        async with self.session.request(scope["method"], path, data=body, headers=headers) as resp:
            out = [(k.lower().encode(), v.encode()) for k, v in resp.headers.items()]
            out = [(k, v) for k, v in out if k.decode() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": resp.status, "headers": out})
            async for chunk in resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=512)
                self.session = aiohttp.ClientSession(
                    self.engine_url, connector=connector, auto_decompress=False
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    port, engine_url = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(BareProxy(engine_url), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
