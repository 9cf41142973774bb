"""HTTP routes of training: start (Ximilar's ``POST /vlm/v2/task/{id}/train/``), jobs, events, cancel,
resume, model versions and their loss curves. One service call each; the service holds the queries."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import File

from gateway.auth import KeyedController
from gateway.dependencies import Page, Ws
from gateway.errors import FieldsInvalidError
from gateway.platform_api.crud import to_page
from gateway.training import schemas as wire
from gateway.training.service import TrainingService, TrainRequest

_decode_train = msgspec.json.Decoder(TrainRequest).decode
Training = NamedDependency[TrainingService]
TaskId = FromPath[uuid.UUID]
JobId = FromPath[uuid.UUID]
ModelId = FromPath[uuid.UUID]


async def train_request(request: Request[Any, Any, Any]) -> TrainRequest:
    """The optional JSON body of the train call (Ximilar's call has none)."""
    raw = await request.body()
    if not raw.strip():
        return TrainRequest()
    try:
        return _decode_train(raw)
    except msgspec.ValidationError as exc:
        path = str(exc).rsplit("`$.", 1)[-1].rstrip("`") if "`$." in str(exc) else "body"
        raise FieldsInvalidError({path: str(exc)}) from None
    except msgspec.DecodeError as exc:
        raise FieldsInvalidError({"body": f"is not valid JSON ({exc})"}) from None


class TrainingController(KeyedController):
    tags = ["Training"]  # noqa: RUF012

    @post("/vlm/v2/task/{task_id:uuid}/train/", status_code=201, summary="Start training the task's model")
    async def train(
        self, request: Request[Any, Any, Any], task_id: TaskId, training_service: Training, ws: Ws
    ) -> wire.TrainingJob:
        body = await train_request(request)
        return wire.job_out(await training_service.start(ws, task_id, body))

    @get("/vlm/v2/task/{task_id:uuid}/training-jobs/", summary="List a task's training jobs, newest first")
    async def list_jobs(
        self, task_id: TaskId, training_service: Training, ws: Ws, paging: Page
    ) -> wire.TrainingJobPage:
        return to_page(wire.TrainingJobPage, await training_service.jobs_page(ws, task_id, paging))

    @get("/vlm/v2/training-job/{job_id:uuid}/", summary="Get a training job (status, progress, error)")
    async def get_job(self, job_id: JobId, training_service: Training, ws: Ws) -> wire.TrainingJob:
        return wire.job_out(await training_service.get(ws, job_id))

    @get("/vlm/v2/training-job/{job_id:uuid}/events/", summary="A training job's events, oldest first")
    async def events(
        self, job_id: JobId, training_service: Training, ws: Ws, paging: Page
    ) -> wire.TrainingEventPage:
        return to_page(wire.TrainingEventPage, await training_service.events_page(ws, job_id, paging))

    @post("/vlm/v2/training-job/{job_id:uuid}/cancel/", status_code=200, summary="Cancel a training job")
    async def cancel(self, job_id: JobId, training_service: Training, ws: Ws) -> wire.TrainingJob:
        return wire.job_out(await training_service.cancel(ws, job_id))

    @post(
        "/vlm/v2/training-job/{job_id:uuid}/resume/",
        status_code=200,
        summary="Resume a cancelled or failed job from its last checkpoint",
    )
    async def resume(self, job_id: JobId, training_service: Training, ws: Ws) -> wire.TrainingJob:
        return wire.job_out(await training_service.resume(ws, job_id))

    @get("/vlm/v2/task/{task_id:uuid}/models/", summary="List the trained versions of a task's model")
    async def versions(
        self, task_id: TaskId, training_service: Training, ws: Ws, paging: Page
    ) -> wire.ModelVersionPage:
        return to_page(wire.ModelVersionPage, await training_service.versions_page(ws, task_id, paging))

    @get("/vlm/v2/model/{model_id:uuid}/", summary="Get one trained model version with its metrics")
    async def version(self, model_id: ModelId, training_service: Training, ws: Ws) -> wire.ModelVersion:
        return await training_service.version(ws, model_id)

    @get(
        "/vlm/v2/model/{model_id:uuid}/loss-curve/",
        summary="The training loss curve of a model version (PNG)",
        media_type="image/png",
    )
    async def loss_curve(self, model_id: ModelId, training_service: Training, ws: Ws) -> File:
        path = await training_service.loss_curve(ws, model_id)
        return File(path=path, media_type="image/png", content_disposition_type="inline")
