"""HTTP routes of vlm.run's predictions API: thin wrappers around one service call each.

Paths as vlm.run's API and SDK use them (``/v1/image/generate``, ``/v1/predictions``, ``/v1/domains``,
``/v1/schema``), plus the webhook secret of the caller's workspace. The workspace is the key's, or the one
a ``workspace`` query parameter names (as on the platform API).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from gateway.auth import require_api_key
from gateway.platform_api.common import workspace_for
from gateway.platform_api.controllers import WorkspaceQ
from gateway.predictions import schemas as wire
from gateway.predictions.service import PredictionService

Skip = Annotated[int, Parameter(ge=0, description="predictions to skip (newest first)")]
Limit = Annotated[int, Parameter(ge=1, le=1000, description="predictions to return")]


async def _workspace(request: Request[Any, Any, Any], workspace: str | None) -> uuid.UUID:
    return await workspace_for(request.state.principal, workspace)


class PredictionController(Controller):
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["Predictions"]  # noqa: RUF012

    @post("/v1/image/generate", status_code=201, summary="Predict from images in a domain (vlm.run)")
    async def image_generate(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[wire.ImageGenerateRequest],
        prediction_service: NamedDependency[PredictionService],
        workspace: WorkspaceQ = None,
    ) -> wire.PredictionResponse:
        return await prediction_service.generate_image(await _workspace(request, workspace), data)

    @post("/v1/video/generate", status_code=201, summary="Predict from a video in a `video.*` domain")
    async def video_generate(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[wire.VideoGenerateRequest],
        prediction_service: NamedDependency[PredictionService],
        workspace: WorkspaceQ = None,
    ) -> wire.PredictionResponse:
        return await prediction_service.generate_video(await _workspace(request, workspace), data)

    @get("/v1/predictions", summary="List predictions, newest first")
    async def list_predictions(
        self,
        request: Request[Any, Any, Any],
        prediction_service: NamedDependency[PredictionService],
        workspace: WorkspaceQ = None,
        skip: Skip = 0,
        limit: Limit = 10,
    ) -> list[wire.PredictionResponse]:
        return await prediction_service.listing(await _workspace(request, workspace), skip, limit)

    @get("/v1/predictions/{prediction_id:str}", summary="Get a prediction: status and result")
    async def get_prediction(
        self,
        request: Request[Any, Any, Any],
        prediction_id: FromPath[str],
        prediction_service: NamedDependency[PredictionService],
        workspace: WorkspaceQ = None,
    ) -> wire.PredictionResponse:
        return await prediction_service.get(await _workspace(request, workspace), prediction_id)

    @get("/v1/domains", summary="List the domains (presets of prompt and answer schema)")
    async def list_domains(
        self, prediction_service: NamedDependency[PredictionService]
    ) -> list[wire.DomainInfo]:
        return prediction_service.domain_list()

    @post("/v1/schema", status_code=200, summary="The answer schema of a domain under a config")
    async def get_schema(
        self, data: JSONBody[wire.SchemaRequest], prediction_service: NamedDependency[PredictionService]
    ) -> wire.SchemaResponse:
        return prediction_service.schema(data)

    @get("/v1/webhook-secret", summary="The secret that signs this workspace's prediction callbacks")
    async def webhook_secret(
        self,
        request: Request[Any, Any, Any],
        prediction_service: NamedDependency[PredictionService],
        workspace: WorkspaceQ = None,
    ) -> wire.WebhookSecretOut:
        return await prediction_service.webhook_secret(await _workspace(request, workspace))

    @post("/v1/webhook-secret/rotate", status_code=200, summary="Replace the callback signing secret")
    async def rotate_webhook_secret(
        self,
        request: Request[Any, Any, Any],
        prediction_service: NamedDependency[PredictionService],
        workspace: WorkspaceQ = None,
    ) -> wire.WebhookSecretOut:
        ws = await _workspace(request, workspace)
        return await prediction_service.webhook_secret(ws, rotate=True)
