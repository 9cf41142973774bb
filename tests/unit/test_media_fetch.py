"""The guarded fetcher against a real aiohttp server on 127.0.0.1 (loopback only; allowed only by config)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from adapters.supervisor import free_port
from gateway.media.address import AddressGuard, AllowList
from gateway.media.errors import MediaBlocked, MediaTimeout, MediaTooLarge, MediaUnreachable
from gateway.media.fetch import Fetcher, FetchLimits
from tests.fakes import StubResolver
from tests.support.media import png_bytes

PNG = png_bytes("green")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class MediaServer:
    port: int
    hits: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[MediaServer]:
    state = MediaServer(free_port())

    async def record(request: web.Request) -> None:
        state.hits.append(request.path)

    async def image(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=PNG, content_type="text/plain")  # the claimed type is wrong on purpose

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        n = int(request.match_info["n"])
        raise web.HTTPFound("/img.png" if n == 0 else f"/redirect/{n - 1}")

    def redirect_to(target: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            await record(request)
            raise web.HTTPFound(target.format(port=state.port))

        return handler

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * 100_000)

    async def stream_big(request: web.Request) -> web.StreamResponse:
        await record(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b"y" * 1000)
        await resp.write_eof()
        return resp

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.sleep(5)
        return web.Response(body=PNG)

    async def missing(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/img.png", image)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/to-file", redirect_to("file:///etc/passwd"))
    app.router.add_get("/to-ip", redirect_to("http://127.0.0.1:{port}/img.png"))
    app.router.add_get("/big", big)
    app.router.add_get("/stream-big", stream_big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", state.port).start()
    yield state
    await runner.cleanup()


def fetcher(allow: list[str] | None = None, resolver: StubResolver | None = None, **limits: float) -> Fetcher:
    guard = AddressGuard(AllowList.parse(allow or []), resolver)
    return Fetcher(guard, FetchLimits(**limits))  # type: ignore[arg-type]


async def fetch(f: Fetcher, url: str, max_bytes: int = 1_000_000) -> bytes:
    try:
        return (await f.fetch(url, max_bytes)).data
    finally:
        await f.close()


async def test_loopback_is_refused_by_default_and_nothing_is_sent(server: MediaServer) -> None:
    for url in (server.url("/img.png"), server.url("/img.png", host="localhost")):
        with pytest.raises(MediaBlocked, match="loopback"):
            await fetch(fetcher(), url)
    assert server.hits == []


async def test_allowed_loopback_is_fetched(server: MediaServer) -> None:
    assert await fetch(fetcher(["127.0.0.0/8"]), server.url("/img.png")) == PNG


async def test_redirects_are_followed_up_to_the_limit(server: MediaServer) -> None:
    assert await fetch(fetcher(["127.0.0.1"], max_redirects=3), server.url("/redirect/2")) == PNG
    with pytest.raises(MediaUnreachable, match="more than 3 redirects"):
        await fetch(fetcher(["127.0.0.1"], max_redirects=3), server.url("/redirect/5"))


async def test_redirect_to_another_scheme_is_refused(server: MediaServer) -> None:
    with pytest.raises(MediaBlocked, match="scheme `file:`"):
        await fetch(fetcher(["127.0.0.1"]), server.url("/to-file"))


async def test_every_redirect_target_is_checked_again(server: MediaServer) -> None:
    """`media.test` is trusted by name; its redirect to a loopback IP literal is not."""
    resolver = StubResolver({"media.test": ["127.0.0.1"]})
    f = fetcher(["media.test"], resolver)
    assert await fetch(f, server.url("/img.png", host="media.test")) == PNG
    with pytest.raises(MediaBlocked, match="loopback"):
        await fetch(f, server.url("/to-ip", host="media.test"))
    assert server.hits == ["/img.png", "/to-ip"]  # the redirect target was never requested


async def test_connection_goes_to_the_checked_address_without_a_second_lookup(server: MediaServer) -> None:
    resolver = StubResolver({"media.test": ["127.0.0.1"]})
    f = fetcher(["127.0.0.1/32"], resolver)
    assert await fetch(f, server.url("/img.png", host="media.test")) == PNG
    assert resolver.asked == ["media.test"]


async def test_a_name_resolving_outside_the_allow_list_is_refused(server: MediaServer) -> None:
    resolver = StubResolver({"media.test": ["127.0.0.2"]})  # loopback, but not the allowed 127.0.0.1
    with pytest.raises(MediaBlocked, match="loopback"):
        await fetch(fetcher(["127.0.0.1/32"], resolver), server.url("/img.png", host="media.test"))
    assert server.hits == []


async def test_slow_server_times_out(server: MediaServer) -> None:
    with pytest.raises(MediaTimeout, match=r"longer than 0\.5 s"):
        await fetch(fetcher(["127.0.0.1"], total_timeout_s=0.5), server.url("/slow"))


@pytest.mark.parametrize("path", ["/big", "/stream-big"])
async def test_byte_cap(server: MediaServer, path: str) -> None:
    with pytest.raises(MediaTooLarge, match="limit of 50000 bytes"):
        await fetch(fetcher(["127.0.0.1"]), server.url(path), max_bytes=50_000)
    assert len(await fetch(fetcher(["127.0.0.1"]), server.url(path), max_bytes=100_000)) == 100_000


async def test_error_status_and_closed_port_are_unreachable(server: MediaServer) -> None:
    with pytest.raises(MediaUnreachable, match="HTTP 404"):
        await fetch(fetcher(["127.0.0.1"]), server.url("/missing"))
    with pytest.raises(MediaUnreachable, match="could not connect"):
        await fetch(fetcher(["127.0.0.1"]), f"http://127.0.0.1:{free_port()}/img.png")
