"""A loopback pass-through proxy in front of an engine that holds each chat completion for a while.

Tests that must catch a job while it is running (a gateway stopped or killed mid-answer) put this between
their gateway and the real vLLM: the answer is vLLM's own, it only starts ``hold_s`` seconds later, so the
job is reliably ``running`` for that long however fast the tiny model answers.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tests.support.http_server import ThreadedServer

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def slow_engine(engine_url: str, hold_s: float) -> ThreadedServer:
    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path.endswith("/chat/completions"):
            await asyncio.sleep(hold_s)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, engine_url + request.path_qs, data=body, headers=headers
            ) as upstream,
        ):
            payload = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, body=payload, headers=kept)

    return ThreadedServer({"/{tail:.*}": forward})
