"""The floor of a Litestar route: the framework's share of the gateway's cost per request.

    python benchmarks/litestar_floor.py PORT ENGINE_URL

One Litestar route, ``POST /v1/chat/completions``, under uvicorn like the gateway: the body decoded into the
gateway's own ``ChatCompletionRequest`` (msgspec, as the gateway validates it), encoded again, forwarded with
aiohttp, and the engine's answer (whole, or streamed as it arrives) returned as it is. No authentication,
middleware, routing of models, media or structured output: what is left is Litestar plus one decode and one
encode, the least any Litestar handler that validates its body costs.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import uvicorn
from litestar import Litestar, Response, get, post
from litestar.response import Stream

from gateway.openai_api.protocol import ChatCompletionRequest

ENGINE = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8001"
HEADERS = {"content-type": "application/json"}
state: dict[str, aiohttp.ClientSession] = {}


def session() -> aiohttp.ClientSession:
    if "s" not in state:
        state["s"] = aiohttp.ClientSession(ENGINE, connector=aiohttp.TCPConnector(limit=512))
    return state["s"]


async def relay(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    finally:
        resp.release()


@post("/v1/chat/completions", status_code=200)
async def chat(data: ChatCompletionRequest) -> Response[bytes] | Stream:
    body = msgspec.json.encode(data)
    if data.stream:
        resp = await session().post("/v1/chat/completions", data=body, headers=HEADERS)
        return Stream(relay(resp), media_type="text/event-stream")
    async with session().post("/v1/chat/completions", data=body, headers=HEADERS) as resp:
        answer = await resp.read()
    return Response(answer, media_type="application/json")


@get("/v1/models")
async def models() -> dict[str, list[str]]:
    return {"data": []}


if __name__ == "__main__":
    uvicorn.run(Litestar([chat, models]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
