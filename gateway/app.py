"""The Litestar application factory. Building the app starts nothing; services start in the lifespan.

What the app is made of is decided in one place, ``gateway.composition`` (services, routes); this module
adds the HTTP concerns around it: authentication state, dependency injection, middleware, the one exception
handler and the OpenAPI document.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from adapters.pool import Engine
from gateway import __version__
from gateway.auth import KeyCache, StaticKeys
from gateway.composition import ROUTES, SERVICE_DEPENDENCIES, running_services
from gateway.db.connection import DatabaseMiddleware
from gateway.dependencies import DEPENDENCIES
from gateway.engines import Say
from gateway.errors import exception_to_response
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.openai_api.fast import ChatFastPath
from gateway.settings import Settings


def stderr_say(message: str) -> None:
    print(f"[vlmgw {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def create_app(
    settings: Settings,
    *,
    engines: list[Engine] | None = None,
    say: Say = stderr_say,
) -> Litestar:
    """Build the gateway. ``engines`` replaces the ones from settings (tests pass fakes)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with running_services(settings, metrics, say, engines) as services:
            app.state.services = services
            app.state.db = services.db  # DatabaseMiddleware enters it around every request
            try:
                yield
            finally:
                app.state.db = None

    state = State(
        {
            "settings": settings,
            "metrics": metrics,
            "api_keys": StaticKeys(settings.api_keys),
            "key_cache": KeyCache(settings.key_cache_ttl_s),
            "started_at": time.monotonic(),
        }
    )
    app = Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        state=state,
        dependencies={**SERVICE_DEPENDENCIES, **DEPENDENCIES},
        exception_handlers={Exception: exception_to_response},
        middleware=[DefineMiddleware(DatabaseMiddleware, state=state),
                    DefineMiddleware(MetricsMiddleware, metrics=metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        debug=False,
    )  # fmt: skip
    # POST /v1/chat/completions is served in front of Litestar's routing (the same auth, decoding, service
    # and error mapping; gateway.openai_api.fast); the Litestar route documents it and answers odd requests.
    app.asgi_handler = ChatFastPath(app.asgi_handler, app, metrics, settings.max_body_bytes)
    return app


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="vlm-gateway",
        version=__version__,
        description=(
            "Self-hosted, OpenAI-compatible API for vision-language models on vLLM. Point the official "
            "`openai` client at `http://HOST:PORT/v1`."
        ),
        path="/docs",
        render_plugins=[SwaggerRenderPlugin()],
    )
