"""HTTP routes of vlm.run's predictions API: thin wrappers around one service call each.

Paths as vlm.run's API and SDK use them (``/v1/image/generate``, ``/v1/predictions``, ``/v1/domains``,
``/v1/schema``), plus the webhook secret of the caller's workspace. The workspace is the key's, or the one
a ``workspace`` query parameter names (as on the platform API).
"""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from gateway.auth import KeyedController
from gateway.dependencies import Ws
from gateway.predictions import schemas as wire
from gateway.predictions.service import PredictionService

Skip = Annotated[int, Parameter(ge=0, le=1_000_000_000, description="predictions to skip (newest first)")]
Limit = Annotated[int, Parameter(ge=1, le=1000, description="predictions to return")]

Predictions = NamedDependency[PredictionService]


class PredictionController(KeyedController):
    tags = ["Predictions"]  # noqa: RUF012

    @post("/v1/image/generate", status_code=201, summary="Predict from images in a domain (vlm.run)")
    async def image_generate(
        self, data: JSONBody[wire.ImageGenerateRequest], prediction_service: Predictions, ws: Ws
    ) -> wire.PredictionResponse:
        return await prediction_service.generate_image(ws, data)

    @post("/v1/video/generate", status_code=201, summary="Predict from a video in a `video.*` domain")
    async def video_generate(
        self, data: JSONBody[wire.VideoGenerateRequest], prediction_service: Predictions, ws: Ws
    ) -> wire.PredictionResponse:
        return await prediction_service.generate_video(ws, data)

    @get("/v1/predictions", summary="List predictions, newest first")
    async def list_predictions(
        self, prediction_service: Predictions, ws: Ws, skip: Skip = 0, limit: Limit = 10
    ) -> list[wire.PredictionResponse]:
        return await prediction_service.listing(ws, skip, limit)

    @get("/v1/predictions/{prediction_id:str}", summary="Get a prediction: status and result")
    async def get_prediction(
        self, prediction_id: FromPath[str], prediction_service: Predictions, ws: Ws
    ) -> wire.PredictionResponse:
        return await prediction_service.get(ws, prediction_id)

    @get("/v1/domains", summary="List the domains (presets of prompt and answer schema)")
    async def list_domains(self, prediction_service: Predictions) -> list[wire.DomainInfo]:
        return prediction_service.domain_list()

    @post("/v1/schema", status_code=200, summary="The answer schema of a domain under a config")
    async def get_schema(
        self, data: JSONBody[wire.SchemaRequest], prediction_service: Predictions
    ) -> wire.SchemaResponse:
        return prediction_service.schema(data)

    @get("/v1/webhook-secret", summary="The secret that signs this workspace's prediction callbacks")
    async def webhook_secret(self, prediction_service: Predictions, ws: Ws) -> wire.WebhookSecretOut:
        return await prediction_service.webhook_secret(ws)

    @post("/v1/webhook-secret/rotate", status_code=200, summary="Replace the callback signing secret")
    async def rotate_webhook_secret(self, prediction_service: Predictions, ws: Ws) -> wire.WebhookSecretOut:
        return await prediction_service.webhook_secret(ws, rotate=True)
