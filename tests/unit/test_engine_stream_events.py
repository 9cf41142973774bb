"""``EngineClient.stream_events``: whole server-sent events as bytes, however the engine's writes are cut."""

from __future__ import annotations

import asyncio

from aiohttp import web

from adapters.engine_client import EngineClient
from tests.support.http_server import ThreadedServer

EVENTS = [b'data: {"n":1}\n\n', b'data: {"n":2,"s":"a\\nb"}\n\n', b"data: [DONE]\n\n"]


def pieces_server(pieces: list[bytes]) -> ThreadedServer:
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for piece in pieces:
            await resp.write(piece)
            await asyncio.sleep(0.01)  # separate reads on the client side
        return resp

    return ThreadedServer({"/v1/chat/completions": stream})


async def received(url: str) -> list[bytes]:
    client = EngineClient(url)
    try:
        async with client.stream_events("/v1/chat/completions", b"{}") as events:
            return [block async for block in events]
    finally:
        await client.aclose()


async def test_events_cut_mid_event_come_out_whole() -> None:
    raw = b"".join(EVENTS)
    pieces = [raw[:7], raw[7:20], raw[20:21], raw[21:]]
    with pieces_server(pieces) as server:
        blocks = await received(server.url(""))
    assert b"".join(blocks) == raw
    assert all(block.endswith(b"\n\n") for block in blocks)


async def test_crlf_line_ends_are_normalised_even_when_split() -> None:
    raw = b"".join(EVENTS).replace(b"\n", b"\r\n")
    cut = raw.index(b"\r\n") + 1  # a piece ends between \r and \n
    with pieces_server([raw[:cut], raw[cut:]]) as server:
        blocks = await received(server.url(""))
    assert b"".join(blocks) == b"".join(EVENTS)


async def test_a_last_event_without_its_blank_line_is_still_delivered() -> None:
    with pieces_server([EVENTS[0], b'data: {"n":3}']) as server:
        blocks = await received(server.url(""))
    assert b"".join(blocks) == EVENTS[0] + b'data: {"n":3}\n\n'
