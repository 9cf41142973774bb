"""HTTP routes of the platform API, ``/vlm/v2/...`` as Ximilar's VLM API has them (trailing slashes too).

The five entities share one CRUD shape (``gateway.platform_api.crud``), which also writes the actions that
change one object with a JSON body (a task's add-dataset / remove-dataset, a sample's add-images, ...); what
is particular to one entity (predict, uploading image files, a sample's set-test) is written out. Handlers
receive the caller's workspace (``ws``) and page (``page``) by injection (``gateway.dependencies``) and make
one service call.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from gateway.auth import KeyedController
from gateway.dependencies import Caller, Ws
from gateway.platform_api import schemas as wire
from gateway.platform_api.crud import Action, Resource, with_crud
from gateway.platform_api.images import ImageService
from gateway.platform_api.openapi import UploadOperation, examples
from gateway.platform_api.predict import Prediction, PredictRequest, TaskInference
from gateway.platform_api.upload import uploads_from_request
from gateway.platform_api.workspaces import list_workspaces

Search = Annotated[str | None, Parameter(description="only objects whose name contains this (any case)")]
DatasetQ = Annotated[uuid.UUID | None, Parameter(description="only objects of this dataset (id)")]
TestQ = Annotated[bool | None, Parameter(description="only test (true) or only training (false) samples")]


class PlatformController(KeyedController):
    tags = ["Platform"]  # noqa: RUF012


class WorkspaceController(PlatformController):
    path = "/vlm/v2/workspace"

    @get("/", summary="List the workspaces this key may use (the key's default first)")
    async def list_all(self, principal: Caller) -> wire.WorkspaceList:
        return await list_workspaces(principal)


TASKS = Resource(
    "task", "tasks", wire.Task, wire.TaskPage, wire.TaskCreate, wire.TaskUpdate,
    filters=(("search", Search),),
    summaries={"remove": "Delete a task (its datasets stay)"},
    example=examples.task, page_example=examples.task_page,
    actions=(
        Action("add_dataset", "Attach a dataset to a task", wire.DatasetRef),
        Action("remove_dataset", "Detach a dataset from a task", wire.DatasetRef),
    ),
)  # fmt: skip


@with_crud(TASKS)
class TaskController(PlatformController):
    path = "/vlm/v2/task"

    @post(
        "/{task_id:uuid}/predict/",
        status_code=200,
        summary="Ask the task's model about images: template-constrained text and its typed variables",
    )
    async def predict(
        self, task_id: FromPath[uuid.UUID], data: JSONBody[PredictRequest],
        task_inference: NamedDependency[TaskInference], ws: Ws,
    ) -> Prediction:  # fmt: skip
        return await task_inference.predict(ws, task_id, data)


DATASETS = Resource(
    "dataset", "datasets", wire.Dataset, wire.DatasetPage, wire.DatasetCreate, wire.DatasetUpdate,
    filters=(("search", Search),),
    summaries={"remove": "Delete a dataset with its variables and samples (409 while a task uses it)"},
    example=examples.dataset, page_example=examples.dataset_page,
)  # fmt: skip


@with_crud(DATASETS)
class DatasetController(PlatformController):
    path = "/vlm/v2/dataset"


VARIABLES = Resource(
    "variable", "variables", wire.Variable, wire.VariablePage, wire.VariableCreate, wire.VariableUpdate,
    filters=(("dataset", DatasetQ),),
    summaries={
        "replace": "Replace a variable's definition (`name`, `type` required)",
        "update": "Update some of a variable's definition",
        "remove": "Delete a variable (409 while samples have values for it or the template uses it)",
    },
    example=examples.variable, page_example=examples.variable_page,
)  # fmt: skip


@with_crud(VARIABLES)
class VariableController(PlatformController):
    path = "/vlm/v2/variable"


IMAGES = Resource(
    "image", "images", wire.Image, wire.ImagePage, operations=("list", "get", "remove"),
    summaries={
        "get": "Get an image record",
        "remove": "Delete an image (409 while a sample uses it)",
    },
    example=examples.image, page_example=examples.image_page,
)  # fmt: skip


@with_crud(IMAGES)
class ImageController(PlatformController):
    path = "/vlm/v2/image"

    @post(
        "/",
        status_code=201,
        operation_class=UploadOperation,
        summary="Upload images: multipart files, or JSON with `_base64` / `_url` (or `records` of them)",
        description="One image gives the image record; several (`records`, or several files) give "
        '`{"records": [...]}`.',
    )
    async def upload(
        self, request: Request[Any, Any, Any], image_service: NamedDependency[ImageService], ws: Ws
    ) -> wire.Image | wire.ImageBatch:
        uploads, batch = await uploads_from_request(request)
        images = await image_service.upload(ws, uploads)
        return wire.ImageBatch(records=images) if batch else images[0]

    @get("/{image_id:uuid}/file/", summary="Download an image's bytes", media_type="application/octet-stream")
    async def file(
        self, image_id: FromPath[uuid.UUID], image_service: NamedDependency[ImageService], ws: Ws
    ) -> Response[bytes]:
        data, mime = await image_service.file(ws, image_id)
        return Response(data, media_type=mime)


PLATFORM_CONTROLLERS = [
    WorkspaceController,
    TaskController,
    DatasetController,
    VariableController,
    ImageController,
]
