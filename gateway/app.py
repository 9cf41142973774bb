"""The Litestar application factory. Building the app starts nothing; engines start in the lifespan."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from adapters.engine_client import EngineClient
from adapters.pool import Engine, EnginePool
from adapters.registry import AdapterRegistry, parse_adapter_flag, read_adapter_config
from adapters.supervisor import EngineSpec, VLLMSupervisor, free_port
from gateway import __version__
from gateway.auth import StaticKeys
from gateway.errors import exception_to_response
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.openai_api.chat import ChatService
from gateway.openai_api.controllers import ChatController, ModelsController
from gateway.openai_api.models import ModelService
from gateway.settings import Settings
from gateway.system.controllers import SystemController

log = logging.getLogger("vlmgw")

Say = Callable[[str], None]


def stderr_say(message: str) -> None:
    print(f"[vlmgw {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_engines(settings: Settings, say: Say) -> list[Engine]:
    """Engines from settings: the given URLs, or one spawned vLLM server for ``settings.model``."""
    if settings.engine_urls:
        return [Engine(engine_client(url, settings)) for url in settings.engine_urls]
    if settings.model is None:
        raise ValueError("no engine: give --model to spawn vLLM, or --engine-url for running servers")
    port = settings.engine_port or free_port()
    spec = EngineSpec(
        model=settings.model,
        served_name=settings.engine_name,
        port=port,
        max_lora_rank=settings.engine_max_lora_rank,
        max_loras=settings.engine_max_loras,
        extra_args=list(settings.engine_args),
        log_path=settings.logs_dir / f"engine-{port}.log",
    )
    supervisor = VLLMSupervisor(
        spec, say=say, max_backoff_s=settings.engine_restart_max_backoff_s,
        start_timeout_s=settings.engine_start_timeout_s,
    )  # fmt: skip
    return [Engine(engine_client(spec.url, settings), supervisor=supervisor, expected_model=spec.served_name)]


def engine_client(url: str, settings: Settings) -> EngineClient:
    return EngineClient(
        url,
        connect_timeout_s=settings.engine_connect_timeout_s,
        request_timeout_s=settings.engine_request_timeout_s,
    )


def _engine_state_to_metrics(metrics: Metrics) -> Callable[[Engine], None]:
    def update(engine: Engine) -> None:
        metrics.engine_up.labels(engine.url).set(1 if engine.up else 0)
        if engine.supervisor is not None:
            metrics.engine_restarts.labels(engine.url).set(engine.supervisor.restarts)

    return update


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
        to_metrics = _engine_state_to_metrics(metrics)
        pool = EnginePool(
            engines if engines is not None else build_engines(settings, say),
            poll_interval_s=settings.engine_poll_interval_s,
        )
        registry = AdapterRegistry(
            pool,
            capacity=settings.adapter_capacity or settings.engine_max_loras,
            max_rank=settings.engine_max_lora_rank if settings.model is not None else None,
        )

        def on_state(engine: Engine) -> None:
            to_metrics(engine)
            registry.on_engine_state(engine)

        pool.on_state = on_state
        app.state.pool = pool
        app.state.adapter_registry = registry
        app.state.chat_service = ChatService(pool, metrics, registry)
        app.state.model_service = ModelService(pool, registry)
        await pool.start()
        try:
            register_adapters(registry, settings, say)
            yield
        finally:
            await pool.stop()

    return Litestar(
        route_handlers=[ChatController, ModelsController, SystemController],
        lifespan=[lifespan],
        state=State({"settings": settings, "metrics": metrics, "api_keys": StaticKeys(settings.api_keys),
                     "started_at": time.monotonic()}),
        dependencies={
            "chat_service": Provide(_from_state("chat_service"), sync_to_thread=False),
            "model_service": Provide(_from_state("model_service"), sync_to_thread=False),
        },
        exception_handlers={Exception: exception_to_response},
        middleware=[DefineMiddleware(MetricsMiddleware, metrics=metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        debug=False,
    )  # fmt: skip


def register_adapters(registry: AdapterRegistry, settings: Settings, say: Say) -> None:
    """Register the ``--adapter NAME=DIR`` adapters. The base is the adapter's ``base_model_name_or_path``
    when an engine serves that name, else the one base model the engines serve (adapters trained elsewhere
    name their Hub id, which the engine may serve under another name)."""
    bases = {e.expected_model for e in registry.pool.engines if e.expected_model}
    bases |= {m.id for e in registry.pool.engines for m in e.models.values() if m.parent is None}
    for flag in settings.adapters:
        name, path = parse_adapter_flag(flag)
        named = read_adapter_config(path).get("base_model_name_or_path")
        base = named if named in bases else (next(iter(bases)) if len(bases) == 1 else None)
        if base is None:
            raise ValueError(
                f"adapter `{name}`: its base model `{named}` is not served here (serving: {sorted(bases)})"
            )
        adapter = registry.register(name, path, base_model=str(base))
        say(f"adapter `{name}` registered for `{adapter.base_model}` from {adapter.path}")


def _from_state(name: str) -> Callable[[State], Any]:
    def provide(state: State) -> Any:
        return getattr(state, name)

    provide.__name__ = f"provide_{name}"
    return provide


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
