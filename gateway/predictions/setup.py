"""The predictions API's parts, built in dependency order from the settings and the gateway's services;
``start`` and ``close`` run in the app's lifespan (the background loops need the database context)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass

from gateway.catalog import ModelCatalog
from gateway.media.pipeline import MediaPipeline
from gateway.openai_api.chat import ChatService
from gateway.platform_api.images import ImageService
from gateway.platform_api.samples import SampleService
from gateway.platform_api.tasks import DatasetService
from gateway.platform_api.variables import VariableService
from gateway.predictions.callbacks import CallbackDispatcher, CallbackSender
from gateway.predictions.claims import ClaimStore
from gateway.predictions.domains import BUILT_IN, DomainRegistry
from gateway.predictions.executor import PredictionExecutor
from gateway.predictions.intake import MediaBlobs, MediaIntake
from gateway.predictions.runner import BatchRunner
from gateway.predictions.service import PredictionService, Signals, callback_body
from gateway.predictions.training_loop import TrainingLoop
from gateway.predictions.webhook_secrets import WebhookSecrets
from gateway.settings import Settings


@dataclass(frozen=True)
class PlatformServices:
    images: ImageService
    datasets: DatasetService
    variables: VariableService
    samples: SampleService


@dataclass(frozen=True)
class Predictions:
    service: PredictionService
    runner: BatchRunner
    dispatcher: CallbackDispatcher

    async def start(self) -> None:
        await self.runner.start()
        await self.dispatcher.start()

    async def close(self) -> None:
        await self.runner.close()
        await self.dispatcher.close()


def owner_id() -> str:
    """This gateway process, as the owner of its claims."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_predictions(
    settings: Settings,
    *,
    chat: ChatService,
    catalog: ModelCatalog,
    media: MediaPipeline,
    platform: PlatformServices,
) -> Predictions:
    claims = ClaimStore(owner_id(), settings.predictions_lease_s)
    signals = Signals(batch=asyncio.Event(), finished=asyncio.Event())
    sender = CallbackSender(media.fetcher.guard, settings.callback_timeout_s)
    secrets = WebhookSecrets()
    service = PredictionService(
        domains=DomainRegistry.load(BUILT_IN, settings.predictions_domains_dir),
        intake=MediaIntake(media),
        executor=PredictionExecutor(chat, catalog.list_for),
        claims=claims,
        blobs=MediaBlobs(settings.store_dir / "predictions"),
        callbacks=sender,
        secrets=secrets,
        training=TrainingLoop(platform.images, platform.datasets, platform.variables, platform.samples),
        signals=signals,
        video_frames=settings.media_video_frames,
        max_attempts=settings.predictions_max_attempts,
        retry_delay_s=settings.predictions_retry_delay_s,
    )
    runner = BatchRunner(
        claims, service.run_claimed, concurrency=settings.predictions_concurrency,
        poll_interval_s=settings.predictions_poll_interval_s, wake=signals.batch,
    )  # fmt: skip
    dispatcher = CallbackDispatcher(
        claims, sender, secrets, callback_body, max_attempts=settings.callback_max_attempts,
        backoff_s=settings.callback_backoff_s, poll_interval_s=settings.predictions_poll_interval_s,
        wake=signals.finished,
    )  # fmt: skip
    return Predictions(service, runner, dispatcher)
