"""``POST /v1/chat/completions`` without Litestar's per-request machinery: a raw ASGI layer in front of it.

The route is the gateway's hottest by far, and Litestar's handler machinery (the request object, the
signature model, dependency injection with its task group, the guard, the response objects, the streaming
response's task group) costs several times what a bare proxy spends on a whole request. ``ChatFastPath``
wraps the app's ASGI handler and serves exactly this method and path itself, with the same pieces the
Litestar route uses: ``principal_for`` (API keys), ``workspace_for`` (``?workspace=`` and the body's
``workspace``), msgspec decoding into ``ChatCompletionRequest``, ``ChatService.complete``/``stream``,
``detail_for`` (the one exception mapping), and what the app's two middlewares do, done inline: the
database context (``enter_app_database``, as ``DatabaseMiddleware``) and the request's count and latency
(``Metrics.record_request``, as ``MetricsMiddleware``), which saves two coroutine layers and a wrapped
``send`` per request. Everything
else goes to Litestar untouched, and so does every request of this route that the fast path does not
answer the same way by construction: a body that does not decode (Litestar names the problem, after
checking the key first), another content type, a body over the size limit or without a length, a query
other than one ``workspace=<uuid>``, an odd host header or a root path. Those requests reach Litestar
with the body the fast path read replayed, so the answers are Litestar's own. The Litestar route stays
registered: it documents the route in the OpenAPI schema and answers the requests handed to it.

Why not Litestar's ``@asgi`` handler: it would cost about as little (routing is ~8 us of a request), but it
cannot share its method and path with the documented ``@post`` route, so the OpenAPI document would change,
and the fallback for odd requests would be lost (``benchmarks/route_floor.py`` measures the options).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar
from litestar._asgi.utils import is_valid_host
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from gateway.auth import principal_for
from gateway.db.connection import enter_app_database, leave_app_database
from gateway.dependencies import workspace_for
from gateway.errors import ErrorResponse, detail_for
from gateway.metrics import Metrics
from gateway.openai_api.protocol import ChatCompletionRequest
from gateway.openai_api.streaming import DONE, EVENT_STREAM

PATH = "/v1/chat/completions"
_decode_request = msgspec.json.Decoder(ChatCompletionRequest).decode
_encode = msgspec.json.Encoder().encode
_WORKSPACE_QUERY = re.compile(
    rb"\Aworkspace=([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\Z"
)
_JSON_HEADERS = [(b"content-type", b"application/json")]
_STREAM_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"content-type", EVENT_STREAM.encode() + b"; charset=utf-8"),
    ],
}
_STREAM_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


class ChatFastPath:
    """ASGI: ``POST /v1/chat/completions`` served directly; everything else passed to ``inner``."""

    def __init__(self, inner: ASGIApp, app: Litestar, metrics: Metrics, max_body_bytes: int | None) -> None:
        self.inner = inner
        self.state = app.state
        self.metrics = metrics
        self.max_body = max_body_bytes or math.inf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_chat(scope):
            await self.inner(scope, receive, send)
            return
        authorization, length, plain = _read_headers(scope["headers"])
        query = scope["query_string"]
        in_query = _WORKSPACE_QUERY.match(query) if query else None
        if not plain or length is None or length > self.max_body or (query and in_query is None):
            await self.inner(scope, receive, send)  # nothing read yet: Litestar gets the request as it is
            return
        read: list[ReceiveMessage] = []
        body = await _read_body(receive, read, self.max_body)
        chat = None
        if body is not None:
            try:
                chat = _decode_request(body)
            except msgspec.DecodeError:  # Litestar checks the key first and names the problem
                chat = None
        if chat is None:
            await self.inner(scope, _replay(read, receive), send)
            return
        workspace = uuid.UUID(in_query.group(1).decode()) if in_query is not None else None
        scope["path_template"] = PATH  # as Litestar's router sets it
        await self._serve(chat, authorization, workspace, receive, send)

    async def _serve(
        self,
        chat: ChatCompletionRequest,
        authorization: str | None,
        workspace: uuid.UUID | None,
        receive: Receive,
        send: Send,
    ) -> None:
        """The answer, in the app's database context and counted and timed as ``DatabaseMiddleware`` and
        ``MetricsMiddleware`` do for Litestar's routes (inline here: two fewer coroutine layers and no
        wrapped ``send``): the status of the response start (500 when none was sent), until the last byte."""
        started = time.perf_counter()
        status = 500
        token = enter_app_database(self.state)
        try:
            try:
                principal = await principal_for(authorization, self.state.api_keys, self.state.key_cache)
                ws = await workspace_for(principal, chat.workspace, workspace)
                service = self.state.services.chat_service
                if chat.stream:
                    events = await service.stream(chat, ws)
                else:
                    body = _encode(await service.complete(chat, ws))
            except Exception as exc:  # the one mapping, as Litestar's exception handler does
                status, detail, headers = detail_for(exc)
                await _send_whole(send, status, _encode(ErrorResponse(detail)), headers)
                return
            status = 200
            if chat.stream:
                await _send_stream(events, receive, send)
            else:
                await _send_whole(send, 200, body, None)
        finally:
            leave_app_database(token)
            self.metrics.record_request(PATH, "POST", status, time.perf_counter() - started)


def _is_chat(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["path"] == PATH
        and scope["method"] == "POST"  # type: ignore[typeddict-item]  # an http scope has one
        and not scope.get("root_path")
    )


def _read_headers(headers: Any) -> tuple[str | None, int | None, bool]:
    """The Authorization header, the content length, and whether the rest is plain: a JSON content type
    and a host header Litestar accepts (it refuses others with a 400)."""
    authorization = None
    length = None
    json_type = False
    for name, value in headers:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"content-type":
            json_type = value == b"application/json"
        elif name == b"host" and not is_valid_host(value):
            return None, None, False
    return authorization, length, json_type


async def _read_body(receive: Receive, read: list[ReceiveMessage], limit: float) -> bytes | None:
    """The whole body, or None when the client left or it grew over ``limit`` (every message kept in
    ``read`` so that Litestar can be given them again)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(read: list[ReceiveMessage], receive: Receive) -> Receive:
    """A receive that gives the messages already read again, then the connection's own."""
    pending = list(read)

    async def replayed() -> ReceiveMessage:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _send_whole(send: Send, status: int, body: bytes, headers: dict[str, str] | None) -> None:
    """A JSON response with the headers Litestar's ``Response`` sends (extra ones first)."""
    extra = (
        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()] if headers else []
    )
    head = [*extra, *_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_stream(events: AsyncIterator[bytes], receive: Receive, send: Send) -> None:
    """Relay the events, one body message each; stop (closing the engine's stream) when the client leaves,
    as Litestar's streaming response does."""
    task = asyncio.current_task()
    assert task is not None
    live = True

    def on_disconnect(_watcher: asyncio.Future[Any]) -> None:
        if live:
            task.cancel()

    watcher = asyncio.ensure_future(_disconnected(receive))
    watcher.add_done_callback(on_disconnect)
    try:
        await send(_STREAM_START)
        ended = False
        async for event in events:  # after [DONE] the relay only reads the engine's stream to its end
            if not ended:
                ended = event.endswith(DONE)  # the answer's last write also ends the response
                live = not ended  # once it has ended, the client may go: the engine's stream is drained
                await send({"type": "http.response.body", "body": event, "more_body": not ended})
        if not ended:
            await send(_STREAM_END)
    except asyncio.CancelledError:
        if not (watcher.done() and not watcher.cancelled()):
            raise  # cancelled from outside, not by the client leaving
        task.uncancel()
    finally:
        live = False
        if not watcher.done():
            watcher.cancel()
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
