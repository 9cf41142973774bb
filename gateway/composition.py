"""The composition root: every service of a running gateway, built once, in dependency order.

Each service gets what it needs in its constructor; nothing is completed afterwards. The order is the
dependency order, lowest first:

    model store -> engines -> pool -> adapter registry -> model catalog (with the trained-task-model kind)
    fetcher -> image service -> media pipeline
    catalog + media + structured output -> chat service
    task models + chat -> version publisher (recognition's, around the VLM one) -> training service
    -> platform services -> task inference -> recognition API (tasks, labels, images, training, classify)
    settings -> export service (trained versions' files on disk; its own child processes)

``running_services`` opens the database and starts the engines (it is the app's lifespan's body) and yields
a ``Services``; ``SERVICE_DEPENDENCIES`` makes each service injectable into route handlers by name.

Where new things go (see also README, "Layout"): a new API family is a package ``gateway/<family>/``
(schemas, service, controllers) whose service is built here from the services it needs, whose controllers
join ``ROUTES`` and whose service joins ``Services``; a new kind of model name is a ``ModelKind`` passed to
the catalog here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any

from litestar.datastructures import State
from litestar.di import Provide
from tortoise.context import TortoiseContext

from adapters.pool import Engine, EnginePool
from adapters.registry import AdapterRegistry
from gateway.catalog import ModelCatalog, TaskModels
from gateway.db.connection import open_database
from gateway.db.keys import ensure_defaults
from gateway.engines import Say, build_engines, engine_enforces_grammars, engine_metrics, media_via_files
from gateway.exports.controllers import ExportController
from gateway.exports.service import ExportService, build_export_service
from gateway.jobs.leases import JobLeases
from gateway.media.pipeline import MediaPipeline, fetcher_from_settings
from gateway.metrics import Metrics
from gateway.openai_api.chat import ChatService
from gateway.openai_api.controllers import ChatController, ModelsController
from gateway.platform_api.controllers import PLATFORM_CONTROLLERS
from gateway.platform_api.images import ImageService
from gateway.platform_api.predict import TaskInference
from gateway.platform_api.sample_controller import SampleController
from gateway.platform_api.samples import SampleService
from gateway.platform_api.tasks import DatasetService, TaskService
from gateway.platform_api.variables import VariableService
from gateway.predictions.controllers import PredictionController
from gateway.predictions.service import PredictionService
from gateway.predictions.setup import PlatformServices, Predictions, build_predictions
from gateway.recognition.api import RecognitionApi
from gateway.recognition.classifier import Classifier
from gateway.recognition.controllers import RECOGNITION_CONTROLLERS
from gateway.recognition.publication import RecognitionPublisher
from gateway.recognition.setup import build_recognition
from gateway.settings import Settings
from gateway.structured.service import StructuredOutputService
from gateway.system.controllers import SystemController
from gateway.training.backends import training_backend, worker_id
from gateway.training.controllers import TrainingController
from gateway.training.publication import VersionPublisher
from gateway.training.service import TrainingService, local_adapter_path
from models_store.image_store import ImageStore
from models_store.store import open_store

ROUTES = [ChatController, ModelsController, SystemController, *PLATFORM_CONTROLLERS, SampleController,
          TrainingController, PredictionController, ExportController, *RECOGNITION_CONTROLLERS]  # fmt: skip


@dataclass(frozen=True)
class Services:
    """The running gateway's services; the field names are the names handlers inject them by."""

    db: TortoiseContext
    pool: EnginePool
    catalog: ModelCatalog
    task_models: TaskModels
    chat_service: ChatService
    image_service: ImageService
    training_service: TrainingService
    task_service: TaskService
    dataset_service: DatasetService
    variable_service: VariableService
    sample_service: SampleService
    task_inference: TaskInference
    prediction_service: PredictionService
    predictions: Predictions  # the predictions API's background loops (batch runner, callbacks)
    export_service: ExportService
    recognition: RecognitionApi  # Ximilar's /recognition/v2 (gateway.recognition)


def _provider(name: str) -> Callable[[State], Any]:
    def provide(state: State) -> Any:
        return getattr(state.services, name)

    provide.__name__ = f"provide_{name}"
    return provide


SERVICE_DEPENDENCIES = {
    f.name: Provide(_provider(f.name), sync_to_thread=False)
    for f in fields(Services)
    if f.name not in ("db", "pool", "predictions")
}


@asynccontextmanager
async def running_services(
    settings: Settings, metrics: Metrics, say: Say, engines: list[Engine] | None = None
) -> AsyncIterator[Services]:
    """Build and start every service; stop them in reverse order on exit. ``engines`` replaces the ones
    from settings (tests pass fakes)."""
    spawned = engines is None
    pool = EnginePool(
        build_engines(settings, say) if engines is None else engines,
        poll_interval_s=settings.engine_poll_interval_s,
        listeners=[engine_metrics(metrics)],
    )
    registry = AdapterRegistry(
        pool,
        capacity=settings.adapter_capacity or settings.engine_max_loras,
        max_rank=settings.engine_max_lora_rank if settings.model is not None else None,
        engines_resolve=settings.engine_adapter_source == "store",
    )
    async with open_database(settings.db_url) as db:
        await ensure_defaults()
        handoff = spawned and media_via_files(settings)
        services, media = _build(settings, metrics, say, db, pool, registry, handoff=handoff)
        await pool.start()
        try:
            services.catalog.register_adapters(settings.adapters, say)
            await services.task_models.register_all()
            services.training_service.start_background()  # job leases: heartbeat, take-overs
            await services.predictions.start()
            await services.export_service.start_background()
            yield services
        finally:
            await services.export_service.close()
            await services.predictions.close()
            await services.training_service.close()
            await pool.stop()
            await media.close()


def _build(
    settings: Settings, metrics: Metrics, say: Say, db: TortoiseContext, pool: EnginePool,
    registry: AdapterRegistry, *, handoff: bool,
) -> tuple[Services, MediaPipeline]:  # fmt: skip
    served_base = settings.engine_name if settings.model else ""
    store = open_store(settings.store_location, settings.store_cache_dir)
    task_models = TaskModels(registry, served_base, lambda key: local_adapter_path(store, key))
    catalog = ModelCatalog(pool, registry, kinds=[task_models])
    fetcher = fetcher_from_settings(settings)
    image_store = ImageStore(store, max_pixels=settings.media_image_max_pixels)
    images = ImageService(image_store, fetcher, settings.media_image_max_bytes)
    media = MediaPipeline.from_settings(settings, handoff_folder=handoff, fetcher=fetcher, stored=images)
    structured = StructuredOutputService(
        metrics, settings.structured_cache_size, grammars=engine_enforces_grammars(settings)
    )
    chat = ChatService(catalog, metrics, media, structured)
    launch, base_model_dir = training_backend(settings, store)  # local children, or Ray jobs
    training = TrainingService(
        store=store,
        leases=JobLeases("training", worker_id(), settings.job_lease_ttl_s),
        launch=launch,
        image_root=image_store,
        base_model_dir=base_model_dir,  # the engine's base model (--model)
        served_base_name=served_base,
        publisher=RecognitionPublisher(VersionPublisher(task_models, chat.complete), Classifier(chat)),
        say=say,
        max_jobs=settings.training_max_jobs,
    )
    task_service, dataset_service = TaskService(on_delete=training.before_task_delete), DatasetService()
    variable_service, sample_service = VariableService(), SampleService()
    predictions = build_predictions(
        settings, chat=chat, catalog=catalog, media=media,
        platform=PlatformServices(images, dataset_service, variable_service, sample_service),
    )  # fmt: skip
    services = Services(
        db=db, pool=pool, catalog=catalog, task_models=task_models, chat_service=chat, image_service=images,
        training_service=training, task_service=task_service, dataset_service=dataset_service,
        variable_service=variable_service, sample_service=sample_service,
        task_inference=TaskInference(chat, served_base), prediction_service=predictions.service,
        predictions=predictions, export_service=build_export_service(settings, store),
        recognition=build_recognition(settings, task_service, images, training, chat, fetcher),
    )  # fmt: skip
    return services, media
