"""The fast path for POST /v1/chat/completions answers exactly as the Litestar route does.

Each request goes to the same running app twice: once through the app (the fast path, ``ChatFastPath``),
once straight to the Litestar handler the fast path wraps. Status, headers and body must be the same bytes
(a whole answer's ``created`` aside), and the fast path must have served the request itself, or handed it
to Litestar, as each case says.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.engine_client import EngineClient
from adapters.pool import Engine
from gateway.app import create_app
from gateway.db.connection import open_database
from gateway.db.keys import create_key
from gateway.openai_api.fast import ChatFastPath
from gateway.settings import Settings
from tests.fakes import FakeVLLM
from tests.support.fresh_sqlite import seed_database

KEY = "sk-fast"
MSG = [{"role": "user", "content": "hi"}]
GOOD = {"model": "tiny", "messages": MSG, "max_tokens": 5}
MAX_BODY = 4096


class Answer:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        assert start["type"] == "http.response.start"
        self.status: int = start["status"]
        self.headers: list[tuple[bytes, bytes]] = list(start.get("headers", []))
        self.chunks = [m.get("body", b"") for m in messages[1:]]
        assert messages[-1].get("more_body", False) is False
        self.body = b"".join(self.chunks)

    def normal(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        body = re.sub(rb'"created":\d+', b'"created":0', self.body)  # the fake engine's clock
        headers = [(k, v) for k, v in self.headers if k != b"content-length" or body == self.body]
        return self.status, headers, body  # not the writes: a stream's depend on how the engine's reads fell


class Spy:
    """Counts the requests the fast path hands to Litestar."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.inner(scope, receive, send)


async def call(
    app: Any, body: bytes, headers: dict[str, str], query: str = "", disconnect_after_body: bool = False
) -> Answer:
    """One request as uvicorn gives it to an ASGI app: the body in two messages, then a receive that waits
    until the response is complete (or the client leaves) and says ``http.disconnect``."""
    half = len(body) // 2
    pending: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:half], "more_body": True},
        {"type": "http.request", "body": body[half:], "more_body": False},
    ]
    finished = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        if not disconnect_after_body:
            await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            finished.set()

    raw_headers = [(b"host", b"127.0.0.1:8000")] + [
        (k.lower().encode(), v.encode()) for k, v in headers.items()
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions", "root_path": "", "query_string": query.encode(),
        "headers": raw_headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    if disconnect_after_body:
        sent.append({"type": "http.response.body", "body": b"", "more_body": False})
    return Answer(sent)


def json_headers(key: str | None = KEY, length: int | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    if length is not None:
        headers["content-length"] = str(length)
    return headers


Compare = Callable[..., Any]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Any, Spy, FakeVLLM]]:
    fake = FakeVLLM()
    fake.start()
    settings = Settings(
        data_dir=tmp_path, engine_poll_interval_s=60.0, api_keys=[KEY], max_body_bytes=MAX_BODY
    )
    seed_database(tmp_path)
    engines = [Engine(EngineClient(fake.url, connect_timeout_s=1.0, request_timeout_s=30.0))]
    app = create_app(settings, engines=engines, say=lambda _m: None)
    fast = app.asgi_handler
    assert isinstance(fast, ChatFastPath)
    spy = Spy(fast.inner)
    fast.inner = spy
    ready, done = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:  # entered and left in one task (anyio's cancel scopes require it)
        async with app.lifespan():  # the services and the engine pool, on this test's event loop
            ready.set()
            await done.wait()

    running = asyncio.ensure_future(lifespan())
    try:
        await asyncio.wait([running, asyncio.ensure_future(ready.wait())], return_when="FIRST_COMPLETED")
        assert ready.is_set(), running.exception()
        yield app, spy, fake
    finally:
        done.set()
        await running
        fake.stop()


async def both(
    gateway: tuple[Any, Spy, FakeVLLM], body: Any, headers: dict[str, str] | None = None, query: str = ""
) -> tuple[Answer, Answer, int]:
    """The fast path's answer, Litestar's, and how many of the two requests reached Litestar."""
    app, spy, _fake = gateway
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = json_headers(length=len(raw)) if headers is None else headers
    before = spy.calls
    fast_answer = await call(app, raw, head, query)
    fast_path = app.asgi_handler
    app.asgi_handler = fast_path.inner
    try:
        litestar_answer = await call(app, raw, head, query)
    finally:
        app.asgi_handler = fast_path
    return fast_answer, litestar_answer, spy.calls - before


def same(fast: Answer, litestar: Answer) -> None:
    assert fast.normal() == litestar.normal()


async def test_whole_answer_is_served_fast_and_matches(gateway: Any) -> None:
    fast, litestar, handed = await both(gateway, GOOD)
    assert handed == 1  # only the direct call
    assert fast.status == 200
    assert json.loads(fast.body)["choices"][0]["message"]["content"] == "The image is red."
    same(fast, litestar)


async def test_stream_is_served_fast_and_matches_event_for_event(gateway: Any) -> None:
    body = {**GOOD, "stream": True, "stream_options": {"include_usage": True}}
    fast, litestar, handed = await both(gateway, body)
    assert handed == 1
    assert fast.status == 200
    assert dict(fast.headers)[b"content-type"].startswith(b"text/event-stream")
    assert fast.body.endswith(b"data: [DONE]\n\n") and b'"usage":{' in fast.body
    same(fast, litestar)  # the same events
    assert fast.chunks[-1].endswith(b"data: [DONE]\n\n")  # the last write also ends the response
    assert gateway[0].state.services.pool.engines[0].inflight == 0


def make_key(tmp_path: Path) -> tuple[str, str]:
    """A database key whose user may also use the workspace `work`; the key and the id of `work`."""

    async def run() -> tuple[str, str]:
        async with open_database(Settings(data_dir=tmp_path).db_url):
            made = await create_key(user_name="alice", workspaces=["home", "work"])
            return made.key, str(made.workspaces[1].id)

    return asyncio.run(run())


async def test_database_key_and_workspace_in_query_or_body(gateway: Any, tmp_path: Path) -> None:
    key, work = await asyncio.to_thread(make_key, tmp_path)
    missing = str(uuid.uuid4())
    cases = [
        (key, f"workspace={work}", GOOD, 200),
        (key, "", {**GOOD, "workspace": work}, 200),
        (key, f"workspace={missing}", GOOD, 404),  # not one of the user's
        (key, "", {**GOOD, "workspace": missing}, 404),
        (KEY, f"workspace={missing}", GOOD, 404),  # the admin: looked up, not found
        (KEY, "", {**GOOD, "workspace": work}, 200),  # the admin may use any workspace
    ]
    for i, (as_key, query, body, status) in enumerate(cases):
        raw = json.dumps(body).encode()
        fast, litestar, handed = await both(gateway, raw, json_headers(as_key, len(raw)), query=query)
        assert (fast.status, handed) == (status, 1), i
        if status == 404:
            assert json.loads(fast.body)["error"]["param"] == "workspace"
        same(fast, litestar)


@pytest.mark.parametrize(
    ("case", "headers", "status", "code"),
    [
        ("no key", json_headers(key=None), 401, "invalid_api_key"),
        ("bad key", json_headers(key="sk-wrong"), 401, "invalid_api_key"),
    ],
)
async def test_auth_errors_are_served_fast_and_match(
    gateway: Any, case: str, headers: dict[str, str], status: int, code: str
) -> None:
    raw = json.dumps(GOOD).encode()
    fast, litestar, handed = await both(gateway, raw, {**headers, "content-length": str(len(raw))})
    assert (fast.status, handed) == (status, 1), case
    assert json.loads(fast.body)["error"]["code"] == code
    same(fast, litestar)


async def test_unknown_model_is_served_fast_and_matches(gateway: Any) -> None:
    fast, litestar, handed = await both(gateway, {**GOOD, "model": "gpt-5"})
    assert (fast.status, handed) == (404, 1)
    assert json.loads(fast.body)["error"]["code"] == "model_not_found"
    same(fast, litestar)


async def test_engine_down_is_503_with_retry_after_in_both(gateway: Any) -> None:
    gateway[2].stop()
    await call(gateway[0], json.dumps(GOOD).encode(), json_headers(length=len(json.dumps(GOOD))))
    for body in (GOOD, {**GOOD, "stream": True}):  # the engine is known to be down by now: one message
        fast, litestar, handed = await both(gateway, body)
        assert (fast.status, handed) == (503, 1)
        assert dict(fast.headers)[b"retry-after"].isdigit()
        same(fast, litestar)


@pytest.mark.parametrize(
    ("case", "body", "status", "param"),
    [
        ("not json", b"{nope", 400, None),
        ("empty body", b"", 400, "data"),  # Litestar's name for the body
        ("a list", b"[]", 400, None),
        ("wrong type", {**GOOD, "max_tokens": "ten"}, 400, "max_tokens"),
        ("out of range", {**GOOD, "temperature": 9}, 400, "temperature"),
        ("missing messages", {"model": "tiny"}, 400, "messages"),
        ("workspace not a uuid", {**GOOD, "workspace": "nope"}, 400, "workspace"),
        ("oversize body", {**GOOD, "messages": [{"role": "user", "content": "x" * MAX_BODY}]}, 413, None),
    ],
)
async def test_bad_bodies_get_litestars_own_answer(
    gateway: Any, case: str, body: Any, status: int, param: str | None
) -> None:
    fast, litestar, handed = await both(gateway, body)
    assert (fast.status, handed) == (status, 2), case  # the fast path handed it to Litestar
    error = json.loads(fast.body)["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    same(fast, litestar)


async def test_bad_body_without_a_key_is_401_as_litestar_checks_the_key_first(gateway: Any) -> None:
    raw = b"{nope"
    fast, litestar, handed = await both(gateway, raw, json_headers(key=None, length=len(raw)))
    assert (fast.status, handed) == (401, 2)
    same(fast, litestar)


@pytest.mark.parametrize(
    ("case", "query", "content_type"),
    [
        ("bad workspace in query", "workspace=nope", "application/json"),
        ("another query parameter", "foo=1", "application/json"),
        ("another content type", "", "text/plain"),
    ],
)
async def test_odd_requests_go_to_litestar_untouched(
    gateway: Any, case: str, query: str, content_type: str
) -> None:
    raw = json.dumps(GOOD).encode()
    headers = {**json_headers(length=len(raw)), "content-type": content_type}
    fast, litestar, handed = await both(gateway, raw, headers, query=query)
    assert handed == 2, case
    same(fast, litestar)


async def test_client_leaving_a_stream_ends_it_and_frees_the_engine(gateway: Any) -> None:
    app = gateway[0]
    raw = json.dumps({**GOOD, "stream": True}).encode()
    await call(app, raw, json_headers(length=len(raw)), disconnect_after_body=True)
    engine = app.state.services.pool.engines[0]
    assert engine.inflight == 0
    after = await call(app, json.dumps(GOOD).encode(), json_headers(length=len(json.dumps(GOOD))))
    assert after.status == 200  # the app goes on serving


async def test_metrics_count_fast_requests_under_the_route(gateway: Any) -> None:
    app = gateway[0]
    await call(app, json.dumps(GOOD).encode(), json_headers(length=len(json.dumps(GOOD))))
    raw = json.dumps(GOOD).encode()
    await call(app, raw, json_headers(key="sk-wrong", length=len(raw)))
    text = app.state.metrics.render().decode()
    assert 'vlmgw_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0' in text
    assert 'vlmgw_requests_total{method="POST",route="/v1/chat/completions",status="401"} 1.0' in text
