"""A loopback pass-through proxy in front of an engine that holds each chat completion for a while.

Tests that must catch a job while it is running (a gateway stopped or killed mid-answer) put this between
their gateway and the real vLLM: the answer is vLLM's own, it only starts ``hold_s`` seconds later, so the
job is reliably ``running`` for that long however fast the tiny model answers.

With ``event_gap_s`` a streamed answer (vLLM's own events) is sent one event at a time, that many seconds
apart, as a larger model would generate it: on two CPU cores the tiny model's whole stream otherwise reaches
a client in one burst at its end, and a test could not tell a relay from a buffer.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tests.support.http_server import ThreadedServer

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def slow_engine(engine_url: str, hold_s: float = 0.0, event_gap_s: float = 0.0) -> ThreadedServer:
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
            if not (event_gap_s and upstream.content_type == "text/event-stream"):
                return web.Response(status=upstream.status, body=payload, headers=kept)
            paced = web.StreamResponse(status=upstream.status, headers=kept)
            await paced.prepare(request)
            for event in payload.split(b"\n\n")[:-1]:
                await paced.write(event + b"\n\n")
                await asyncio.sleep(event_gap_s)
            await paced.write_eof()
            return paced

    return ThreadedServer({"/{tail:.*}": forward})
