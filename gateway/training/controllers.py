"""HTTP routes of training: start (Ximilar's ``POST /vlm/v2/task/{id}/train/``), jobs, events, cancel,
model versions and their loss curves."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import File

from gateway.auth import require_api_key
from gateway.db import models as db
from gateway.db.keys import Principal
from gateway.errors import FieldsInvalidError, NotFoundError
from gateway.platform_api.common import DEFAULT_PAGE_SIZE, get_in_workspace, paginate, workspace_for
from gateway.platform_api.controllers import PageNo, PageSize, WorkspaceQ, page_request, to_page
from gateway.training import schemas as wire
from gateway.training.inference import Prediction, PredictRequest, TaskInference
from gateway.training.service import TrainingService, TrainRequest

_decode_train = msgspec.json.Decoder(TrainRequest).decode


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


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


class TrainingController(Controller):
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["Training"]  # noqa: RUF012

    @post("/vlm/v2/task/{task_id:uuid}/train/", status_code=201, summary="Start training the task's model")
    async def train(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        training_service: NamedDependency[TrainingService],
        workspace: WorkspaceQ = None,
    ) -> wire.TrainingJob:
        body = await train_request(request)
        ws = await workspace_for(_principal(request), body.workspace, workspace)
        return wire.job_out(await training_service.start(ws, task_id, body))

    @post(
        "/vlm/v2/task/{task_id:uuid}/predict/",
        status_code=200,
        summary="Ask the task's model about images: template-constrained text and its typed variables",
    )
    async def predict(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        data: JSONBody[PredictRequest],
        task_inference: NamedDependency[TaskInference],
        workspace: WorkspaceQ = None,
    ) -> Prediction:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await task_inference.predict(ws, task_id, data)

    @get("/vlm/v2/task/{task_id:uuid}/training-jobs/", summary="List a task's training jobs, newest first")
    async def list_jobs(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        workspace: WorkspaceQ = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.TrainingJobPage:
        ws = await workspace_for(_principal(request), workspace)
        task = await get_in_workspace(db.Task, task_id, ws, "Task")
        query = db.TrainingJob.filter(task=task).order_by("-created")
        result = await paginate(query, page_request(request, page, page_size), _render_jobs)
        return to_page(wire.TrainingJobPage, result)

    @get("/vlm/v2/training-job/{job_id:uuid}/", summary="Get a training job (status, progress, error)")
    async def get_job(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[uuid.UUID],
        training_service: NamedDependency[TrainingService],
        workspace: WorkspaceQ = None,
    ) -> wire.TrainingJob:
        ws = await workspace_for(_principal(request), workspace)
        return wire.job_out(await training_service.get(ws, job_id))

    @get("/vlm/v2/training-job/{job_id:uuid}/events/", summary="A training job's events, oldest first")
    async def events(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[uuid.UUID],
        training_service: NamedDependency[TrainingService],
        workspace: WorkspaceQ = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.TrainingEventPage:
        ws = await workspace_for(_principal(request), workspace)
        job = await training_service.get(ws, job_id)
        query = db.TrainingEvent.filter(job=job).order_by("id")
        result = await paginate(query, page_request(request, page, page_size), _render_events)
        return to_page(wire.TrainingEventPage, result)

    @post("/vlm/v2/training-job/{job_id:uuid}/cancel/", status_code=200, summary="Cancel a training job")
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[uuid.UUID],
        training_service: NamedDependency[TrainingService],
        workspace: WorkspaceQ = None,
    ) -> wire.TrainingJob:
        ws = await workspace_for(_principal(request), workspace)
        return wire.job_out(await training_service.cancel(ws, job_id))

    @post(
        "/vlm/v2/training-job/{job_id:uuid}/resume/",
        status_code=200,
        summary="Resume a cancelled or failed job from its last checkpoint",
    )
    async def resume(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[uuid.UUID],
        training_service: NamedDependency[TrainingService],
        workspace: WorkspaceQ = None,
    ) -> wire.TrainingJob:
        ws = await workspace_for(_principal(request), workspace)
        return wire.job_out(await training_service.resume(ws, job_id))

    @get("/vlm/v2/task/{task_id:uuid}/models/", summary="List the trained versions of a task's model")
    async def versions(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        workspace: WorkspaceQ = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.ModelVersionPage:
        ws = await workspace_for(_principal(request), workspace)
        task = await get_in_workspace(db.Task, task_id, ws, "Task")

        async def render(rows: Any) -> list[wire.ModelVersion]:
            return [wire.version_out(r, task.production_version) for r in rows]

        query = db.ModelVersion.filter(task=task).order_by("-version")
        result = await paginate(query, page_request(request, page, page_size), render)
        return to_page(wire.ModelVersionPage, result)

    @get("/vlm/v2/model/{model_id:uuid}/", summary="Get one trained model version with its metrics")
    async def version(
        self, request: Request[Any, Any, Any], model_id: FromPath[uuid.UUID], workspace: WorkspaceQ = None
    ) -> wire.ModelVersion:
        row = await _version_in(await workspace_for(_principal(request), workspace), model_id)
        task = await db.Task.get(id=row.task_id)
        return wire.version_out(row, task.production_version)

    @get(
        "/vlm/v2/model/{model_id:uuid}/loss-curve/",
        summary="The training loss curve of a model version (PNG)",
        media_type="image/png",
    )
    async def loss_curve(
        self,
        request: Request[Any, Any, Any],
        model_id: FromPath[uuid.UUID],
        training_service: NamedDependency[TrainingService],
        workspace: WorkspaceQ = None,
    ) -> File:
        row = await _version_in(await workspace_for(_principal(request), workspace), model_id)
        path = await asyncio.to_thread(training_service.loss_curve_png, row)
        return File(path=path, media_type="image/png", content_disposition_type="inline")


async def _version_in(ws: uuid.UUID, model_id: uuid.UUID) -> db.ModelVersion:
    row = await db.ModelVersion.filter(id=model_id, task__workspace_id=ws).first()
    if row is None:
        raise NotFoundError(f"Model {model_id} not found.")
    return row


async def _render_jobs(rows: Any) -> list[wire.TrainingJob]:
    return [wire.job_out(r) for r in rows]


async def _render_events(rows: Any) -> list[wire.TrainingEvent]:
    return [wire.event_out(r) for r in rows]
