"""HTTP routes of OpenAI's files and fine-tuning API, and model deletion: one service call each.

Paths and parameters as the ``openai`` client sends them (``client.files``, ``client.fine_tuning.jobs``,
``client.fine_tuning.jobs.checkpoints``, ``client.models.delete``). The workspace is the key's, or the one a
``workspace`` query parameter (or form/JSON field) names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from litestar import Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody, Parameter

from gateway.auth import KeyedController
from gateway.dependencies import Ws
from gateway.finetuning import schemas as wire
from gateway.finetuning.files import FileService
from gateway.finetuning.service import FineTuningService

After = Annotated[str | None, Parameter(description="the id of the last item of the previous page")]
JobLimit = Annotated[int, Parameter(ge=1, le=100, description="items per page")]
FileLimit = Annotated[int, Parameter(ge=1, le=10_000, description="files per page")]
Purpose = Annotated[str | None, Parameter(description="only files of this purpose")]
Order = Annotated[Literal["asc", "desc"], Parameter(description="by creation time")]


@dataclass
class FileUpload:
    """``POST /v1/files``: the file and its purpose (``fine-tune`` for training and validation files)."""

    file: UploadFile
    purpose: str
    workspace: str | None = None


class FilesController(KeyedController):
    path = "/v1/files"
    tags = ["OpenAI fine-tuning"]  # noqa: RUF012

    @post("/", status_code=200, summary="Upload a file (a `fine-tune` file is checked line by line)")
    async def create_file(
        self,
        data: Annotated[FileUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        file_service: NamedDependency[FileService],
        ws: Ws,
    ) -> wire.FileObject:
        content = await data.file.read()
        return await file_service.create(ws, data.file.filename or "", data.purpose, content)

    @get("/", summary="List files, newest first by default")
    async def list_files(
        self,
        file_service: NamedDependency[FileService],
        ws: Ws,
        purpose: Purpose = None,
        limit: FileLimit = 10_000,
        after: After = None,
        order: Order = "desc",
    ) -> wire.FileList:
        return await file_service.listing(ws, purpose, limit, after, order)

    @get("/{file_id:str}", summary="Retrieve a file's metadata")
    async def get_file(
        self, file_id: FromPath[str], file_service: NamedDependency[FileService], ws: Ws
    ) -> wire.FileObject:
        return await file_service.get(ws, file_id)

    @get("/{file_id:str}/content", summary="A file's bytes", media_type="application/octet-stream")
    async def file_content(
        self, file_id: FromPath[str], file_service: NamedDependency[FileService], ws: Ws
    ) -> Response[bytes]:
        data, _name = await file_service.content(ws, file_id)
        return Response(data, media_type="application/octet-stream")

    @delete("/{file_id:str}", status_code=200, summary="Delete a file")
    async def delete_file(
        self, file_id: FromPath[str], file_service: NamedDependency[FileService], ws: Ws
    ) -> wire.FileDeleted:
        return await file_service.delete(ws, file_id)


class FineTuningController(KeyedController):
    path = "/v1/fine_tuning/jobs"
    tags = ["OpenAI fine-tuning"]  # noqa: RUF012

    @post("/", status_code=200, summary="Create a fine-tuning job (files checked first; 400 names bad lines)")
    async def create_job(
        self,
        data: JSONBody[wire.CreateJob],
        fine_tuning_service: NamedDependency[FineTuningService],
        ws: Ws,
    ) -> wire.FineTuningJob:
        return await fine_tuning_service.create(ws, data)

    @get("/", summary="List fine-tuning jobs, newest first")
    async def list_jobs(
        self,
        fine_tuning_service: NamedDependency[FineTuningService],
        ws: Ws,
        after: After = None,
        limit: JobLimit = 20,
    ) -> wire.JobList:
        return await fine_tuning_service.listing(ws, after, limit)

    @get("/{job_id:str}", summary="Retrieve a fine-tuning job")
    async def get_job(
        self, job_id: FromPath[str], fine_tuning_service: NamedDependency[FineTuningService], ws: Ws
    ) -> wire.FineTuningJob:
        return await fine_tuning_service.get(ws, job_id)

    @post("/{job_id:str}/cancel", status_code=200, summary="Cancel a fine-tuning job")
    async def cancel_job(
        self, job_id: FromPath[str], fine_tuning_service: NamedDependency[FineTuningService], ws: Ws
    ) -> wire.FineTuningJob:
        return await fine_tuning_service.cancel(ws, job_id)

    @get("/{job_id:str}/events", summary="A job's events, newest first")
    async def list_events(
        self,
        job_id: FromPath[str],
        fine_tuning_service: NamedDependency[FineTuningService],
        ws: Ws,
        after: After = None,
        limit: JobLimit = 20,
    ) -> wire.EventList:
        return await fine_tuning_service.events(ws, job_id, after, limit)

    @get("/{job_id:str}/checkpoints", summary="A job's checkpoints (servable models), newest first")
    async def list_checkpoints(
        self,
        job_id: FromPath[str],
        fine_tuning_service: NamedDependency[FineTuningService],
        ws: Ws,
        after: After = None,
        limit: JobLimit = 10,
    ) -> wire.CheckpointList:
        return await fine_tuning_service.checkpoints(ws, job_id, after, limit)


FINE_TUNING_CONTROLLERS = [FilesController, FineTuningController]
