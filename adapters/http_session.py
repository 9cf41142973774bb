"""An aiohttp session made on first use, inside the running event loop (aiohttp binds a session to the loop
that creates it, so it cannot be made in a constructor that runs before the loop)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp


class LazySession:
    """``get()`` gives the session, making it with ``make`` on first use and again after it was closed."""

    def __init__(self, make: Callable[[], aiohttp.ClientSession]) -> None:
        self._make = make
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._make()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
