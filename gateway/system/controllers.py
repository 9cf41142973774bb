"""GET /health (gateway and engine state) and GET /metrics (Prometheus text)."""

from __future__ import annotations

import time

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State

from adapters.pool import EnginePool
from gateway import __version__
from gateway.metrics import Metrics


class EngineHealth(msgspec.Struct):
    url: str
    state: str
    models: list[str]
    inflight: int
    pid: int | None = None
    restarts: int = 0
    last_error: str | None = None


class Health(msgspec.Struct):
    status: str
    version: str
    uptime_s: float
    engines: list[EngineHealth]


def health_of(pool: EnginePool, started_at: float) -> Health:
    engines = [
        EngineHealth(
            url=e.url,
            state=e.state,
            models=sorted(e.models),
            inflight=e.inflight,
            pid=e.supervisor.pid if e.supervisor else None,
            restarts=e.supervisor.restarts if e.supervisor else 0,
            last_error=e.last_error,
        )
        for e in pool.engines
    ]
    ups = sum(1 for e in pool.engines if e.up)
    if ups == len(engines):
        status = "ok"
    elif ups:
        status = "degraded"
    elif any(e.state == "starting" for e in engines):
        status = "starting"
    else:
        status = "unavailable"
    return Health(status, __version__, round(time.monotonic() - started_at, 1), engines)


class SystemController(Controller):
    tags = ["System"]  # noqa: RUF012

    @get("/health", summary="Gateway and engine state; 200 when every engine is up, else 503")
    async def health(self, state: State) -> Response[Health]:
        body = health_of(state.services.pool, state.started_at)
        return Response(body, status_code=200 if body.status == "ok" else 503)

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
    async def metrics(self, state: State) -> Response[bytes]:
        metrics: Metrics = state.metrics
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
