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
from gateway.auth import KeyCache, StaticKeys
from gateway.db.connection import DatabaseMiddleware, open_database
from gateway.db.keys import ensure_defaults
from gateway.errors import exception_to_response
from gateway.exports.controllers import ExportController
from gateway.exports.service import build_export_service
from gateway.media.pipeline import MediaPipeline
from gateway.metrics import Metrics, MetricsMiddleware
from gateway.openai_api.chat import ChatService
from gateway.openai_api.controllers import ChatController, ModelsController
from gateway.openai_api.models import ModelService
from gateway.platform_api.controllers import (
    DatasetController,
    ImageController,
    TaskController,
    VariableController,
    WorkspaceController,
)
from gateway.platform_api.images import ImageService
from gateway.platform_api.sample_controller import SampleController
from gateway.platform_api.samples import SampleService
from gateway.platform_api.tasks import DatasetService, TaskService
from gateway.platform_api.variables import VariableService
from gateway.settings import Settings
from gateway.structured.service import StructuredOutputService
from gateway.system.controllers import SystemController
from gateway.training.controllers import TrainingController
from gateway.training.inference import TaskInference
from gateway.training.service import TrainingService, local_model_dir
from gateway.training.serving import TaskModels, VersionPublisher
from models_store.image_store import ImageStore

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
    extra_args = [*structured_backend_args(settings), *settings.engine_args]
    if media_via_files(settings) and "--allowed-local-media-path" not in extra_args:
        extra_args += ["--allowed-local-media-path", str(settings.media_handoff_dir.resolve())]
    spec = EngineSpec(
        model=settings.model,
        served_name=settings.engine_name,
        port=port,
        max_lora_rank=settings.engine_max_lora_rank,
        max_loras=settings.engine_max_loras,
        extra_args=extra_args,
        log_path=settings.logs_dir / f"engine-{port}.log",
    )
    supervisor = VLLMSupervisor(
        spec, say=say, max_backoff_s=settings.engine_restart_max_backoff_s,
        start_timeout_s=settings.engine_start_timeout_s,
    )  # fmt: skip
    return [Engine(engine_client(spec.url, settings), supervisor=supervisor, expected_model=spec.served_name)]


def media_via_files(settings: Settings) -> bool:
    """Hand media to the engine as local files: forced by the setting, or (auto) when we spawn the engine."""
    if settings.media_handoff == "auto":
        return settings.model is not None and not settings.engine_urls
    return settings.media_handoff == "file"


def structured_backend_args(settings: Settings) -> list[str]:
    """vLLM flags for the structured-output backend, unless the user passed their own after ``--``."""
    if any(a.startswith("--structured-outputs-config") for a in settings.engine_args):
        return []
    return ["--structured-outputs-config.backend", settings.structured_backend]


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
        async with open_database(settings.db_url) as db:
            app.state.db = db
            await ensure_defaults()
            media = MediaPipeline.from_settings(
                settings, handoff_folder=engines is None and media_via_files(settings)
            )
            image_store = ImageStore(settings.store_dir, max_pixels=settings.media_image_max_pixels)
            images = ImageService(image_store, media.fetcher, settings.media_image_max_bytes)
            media.stored = images
            _platform_services(app.state, images)
            structured = StructuredOutputService(metrics, settings.structured_cache_size)
            app.state.chat_service = ChatService(pool, metrics, media, structured, registry)
            app.state.model_service = ModelService(pool, registry)
            training = training_service(settings, image_store, say)
            app.state.training_service = training
            app.state.export_service = exports = build_export_service(settings)
            task_models = serve_task_models(app.state, registry, training)
            await pool.start()
            try:
                register_adapters(registry, settings, say)
                await task_models.register_all()
                await training.resume_interrupted()
                await exports.start_background()
                yield
            finally:
                await exports.close()
                await training.close()
                await pool.stop()
                await media.close()
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
    return Litestar(
        route_handlers=[ChatController, ModelsController, SystemController, *PLATFORM_CONTROLLERS],
        lifespan=[lifespan],
        state=state,
        dependencies={name: Provide(_from_state(name), sync_to_thread=False) for name in SERVICES},
        exception_handlers={Exception: exception_to_response},
        middleware=[DefineMiddleware(DatabaseMiddleware, state=state),
                    DefineMiddleware(MetricsMiddleware, metrics=metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        debug=False,
    )  # fmt: skip


PLATFORM_CONTROLLERS = [
    WorkspaceController, TaskController, DatasetController, VariableController, SampleController,
    ImageController, TrainingController, ExportController,
]  # fmt: skip
SERVICES = (
    "chat_service", "model_service", "task_service", "dataset_service", "variable_service",
    "sample_service", "image_service", "training_service", "task_inference", "export_service",
)  # fmt: skip


def _platform_services(state: State, images: ImageService) -> None:
    state.image_service = images
    state.task_service = TaskService()
    state.dataset_service = DatasetService()
    state.variable_service = VariableService()
    state.sample_service = SampleService()


def training_service(settings: Settings, images: ImageStore, say: Say) -> TrainingService:
    """Training trains the spawned engine's base model (a local copy of its weights is needed)."""
    served = settings.engine_name if settings.model else ""
    return TrainingService(
        jobs_dir=settings.data_dir / "jobs",
        adapters_dir=settings.store_dir / "adapters",
        image_root=images,
        base_model_dir=lambda _name: local_model_dir(settings.model),
        served_base_name=served,
        say=say,
    )


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


def serve_task_models(state: State, registry: AdapterRegistry, training: TrainingService) -> TaskModels:
    """Trained task models: resolved in chat, filtered per workspace in /v1/models, published by training."""
    task_models = TaskModels(registry, training.served_base_name)
    state.chat_service.resolver = task_models
    state.model_service.visibility = task_models
    publisher = VersionPublisher(task_models, state.chat_service.complete)
    training.publish, training.unpublish = publisher.publish, publisher.unpublish
    state.task_service.on_delete = training.before_task_delete
    state.task_inference = TaskInference(state.chat_service, training.served_base_name)
    return task_models


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
