"""A real aiohttp server on 127.0.0.1 in its own thread and event loop, for media-fetching and callback tests.

Its own thread lets it answer while a test's event loop is blocked (Litestar's test client, openai).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.supervisor import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ThreadedServer:
    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.port = free_port()
        self.hits: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> ThreadedServer:
        ready = threading.Event()
        self._loop.call_soon(ready.set)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _listen(self) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.hits.append(request.path)
            return await handler(request)

        app = web.Application(middlewares=[record])
        for path, handler in self.routes.items():
            app.router.add_route("*", path, handler)  # any method: media GETs, callback POSTs
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
