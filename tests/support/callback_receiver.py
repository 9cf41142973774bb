"""A loopback receiver of prediction callbacks: records every POST and answers with scripted statuses."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.http_server import ThreadedServer


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """``statuses``: the answers to the first POSTs, in order; later ones get 200."""

    statuses: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.deliveries.append(Delivery(body, dict(request.headers)))
            status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "no")

    def serve(self) -> ThreadedServer:
        return ThreadedServer({"/hook": self.handle})

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.deliveries) >= count:
                    return list(self.deliveries)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.deliveries)} callbacks arrived, expected {count}")

    def for_prediction(self, prediction_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.json.get("id") == prediction_id]
