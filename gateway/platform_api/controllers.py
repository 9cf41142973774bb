"""HTTP routes of the platform API, ``/vlm/v2/...`` as Ximilar's VLM API has them (trailing slashes too).

Each handler: resolve the workspace (JSON ``workspace`` field, else ``workspace`` query parameter, else the
key's), make one service call, respond.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from gateway.auth import require_api_key
from gateway.db.keys import Principal
from gateway.platform_api import schemas as wire
from gateway.platform_api.common import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, PageRequest, workspace_for
from gateway.platform_api.images import ImageService
from gateway.platform_api.openapi import UploadOperation, examples
from gateway.platform_api.tasks import DatasetService, TaskService
from gateway.platform_api.upload import uploads_from_request
from gateway.platform_api.variables import VariableService
from gateway.platform_api.workspaces import list_workspaces

PageNo = Annotated[int, Parameter(ge=1, description="1-based page number")]
PageSize = Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="results per page")]
WorkspaceQ = Annotated[str | None, Parameter(description="act in this workspace (id) instead of the key's")]
Search = Annotated[str | None, Parameter(description="only objects whose name contains this (any case)")]
DatasetQ = Annotated[uuid.UUID | None, Parameter(description="only objects of this dataset (id)")]
NO_CONTENT = 204


def page_request(request: Request[Any, Any, Any], page: int, page_size: int) -> PageRequest:
    params = {k: v for k, v in request.query_params.items() if k not in ("page", "page_size")}
    path = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    return PageRequest(page=page, page_size=page_size, path=path, params=params)


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


class _Base(Controller):
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["Platform"]  # noqa: RUF012


class WorkspaceController(_Base):
    path = "/vlm/v2/workspace"

    @get("/", summary="List the workspaces this key may use (the key's default first)")
    async def list_all(self, request: Request[Any, Any, Any]) -> wire.WorkspaceList:
        return await list_workspaces(_principal(request))


class TaskController(_Base):
    path = "/vlm/v2/task"

    @get("/", summary="List tasks", responses=examples.task_page)
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
        search: Search = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.TaskPage:
        ws = await workspace_for(_principal(request), workspace)
        return to_page(
            wire.TaskPage, await task_service.listing(ws, page_request(request, page, page_size), search)
        )

    @post("/", summary="Create a task", status_code=201, responses=examples.task(201))
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[wire.TaskCreate],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
    ) -> wire.Task:
        return await task_service.create(
            await workspace_for(_principal(request), data.workspace, workspace), data
        )

    @get("/{task_id:uuid}/", summary="Get a task", responses=examples.task())
    async def get_one(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
    ) -> wire.Task:
        return await task_service.get(await workspace_for(_principal(request), workspace), task_id)

    @put("/{task_id:uuid}/", summary="Replace a task's fields (`name` required)")
    async def replace(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        data: JSONBody[wire.TaskUpdate],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
    ) -> wire.Task:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await task_service.update(ws, task_id, data, put=True)

    @patch("/{task_id:uuid}/", summary="Update some of a task's fields")
    async def update(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        data: JSONBody[wire.TaskUpdate],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
    ) -> wire.Task:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await task_service.update(ws, task_id, data, put=False)

    @delete("/{task_id:uuid}/", summary="Delete a task (its datasets stay)", status_code=NO_CONTENT)
    async def remove(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
    ) -> None:
        await task_service.delete(await workspace_for(_principal(request), workspace), task_id)

    @post("/{task_id:uuid}/add-dataset/", summary="Attach a dataset to a task", status_code=200)
    async def add_dataset(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        data: JSONBody[wire.DatasetRef],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
    ) -> wire.Task:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await task_service.add_dataset(ws, task_id, data)

    @post("/{task_id:uuid}/remove-dataset/", summary="Detach a dataset from a task", status_code=200)
    async def remove_dataset(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[uuid.UUID],
        data: JSONBody[wire.DatasetRef],
        task_service: NamedDependency[TaskService],
        workspace: WorkspaceQ = None,
    ) -> wire.Task:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await task_service.remove_dataset(ws, task_id, data)


class DatasetController(_Base):
    path = "/vlm/v2/dataset"

    @get("/", summary="List datasets", responses=examples.dataset_page)
    async def list_datasets(
        self,
        request: Request[Any, Any, Any],
        dataset_service: NamedDependency[DatasetService],
        workspace: WorkspaceQ = None,
        search: Search = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.DatasetPage:
        ws = await workspace_for(_principal(request), workspace)
        result = await dataset_service.listing(ws, page_request(request, page, page_size), search)
        return to_page(wire.DatasetPage, result)

    @post("/", summary="Create a dataset", status_code=201, responses=examples.dataset(201))
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[wire.DatasetCreate],
        dataset_service: NamedDependency[DatasetService],
        workspace: WorkspaceQ = None,
    ) -> wire.Dataset:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await dataset_service.create(ws, data)

    @get("/{dataset_id:uuid}/", summary="Get a dataset", responses=examples.dataset())
    async def get_one(
        self,
        request: Request[Any, Any, Any],
        dataset_id: FromPath[uuid.UUID],
        dataset_service: NamedDependency[DatasetService],
        workspace: WorkspaceQ = None,
    ) -> wire.Dataset:
        return await dataset_service.get(await workspace_for(_principal(request), workspace), dataset_id)

    @put("/{dataset_id:uuid}/", summary="Replace a dataset's fields (`name` required)")
    async def replace(
        self,
        request: Request[Any, Any, Any],
        dataset_id: FromPath[uuid.UUID],
        data: JSONBody[wire.DatasetUpdate],
        dataset_service: NamedDependency[DatasetService],
        workspace: WorkspaceQ = None,
    ) -> wire.Dataset:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await dataset_service.update(ws, dataset_id, data, put=True)

    @patch("/{dataset_id:uuid}/", summary="Update some of a dataset's fields")
    async def update(
        self,
        request: Request[Any, Any, Any],
        dataset_id: FromPath[uuid.UUID],
        data: JSONBody[wire.DatasetUpdate],
        dataset_service: NamedDependency[DatasetService],
        workspace: WorkspaceQ = None,
    ) -> wire.Dataset:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await dataset_service.update(ws, dataset_id, data, put=False)

    @delete(
        "/{dataset_id:uuid}/",
        status_code=NO_CONTENT,
        summary="Delete a dataset with its variables and samples (409 while a task uses it)",
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        dataset_id: FromPath[uuid.UUID],
        dataset_service: NamedDependency[DatasetService],
        workspace: WorkspaceQ = None,
    ) -> None:
        await dataset_service.delete(await workspace_for(_principal(request), workspace), dataset_id)


class VariableController(_Base):
    path = "/vlm/v2/variable"

    @get("/", summary="List variables", responses=examples.variable_page)
    async def list_variables(
        self,
        request: Request[Any, Any, Any],
        variable_service: NamedDependency[VariableService],
        workspace: WorkspaceQ = None,
        dataset: DatasetQ = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.VariablePage:
        ws = await workspace_for(_principal(request), workspace)
        result = await variable_service.listing(ws, page_request(request, page, page_size), dataset)
        return to_page(wire.VariablePage, result)

    @post("/", summary="Create a variable", status_code=201, responses=examples.variable(201))
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[wire.VariableCreate],
        variable_service: NamedDependency[VariableService],
        workspace: WorkspaceQ = None,
    ) -> wire.Variable:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await variable_service.create(ws, data)

    @get("/{variable_id:uuid}/", summary="Get a variable", responses=examples.variable())
    async def get_one(
        self,
        request: Request[Any, Any, Any],
        variable_id: FromPath[uuid.UUID],
        variable_service: NamedDependency[VariableService],
        workspace: WorkspaceQ = None,
    ) -> wire.Variable:
        return await variable_service.get(await workspace_for(_principal(request), workspace), variable_id)

    @put("/{variable_id:uuid}/", summary="Replace a variable's definition (`name`, `type` required)")
    async def replace(
        self,
        request: Request[Any, Any, Any],
        variable_id: FromPath[uuid.UUID],
        data: JSONBody[wire.VariableUpdate],
        variable_service: NamedDependency[VariableService],
        workspace: WorkspaceQ = None,
    ) -> wire.Variable:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await variable_service.update(ws, variable_id, data, put=True)

    @patch("/{variable_id:uuid}/", summary="Update some of a variable's definition")
    async def update(
        self,
        request: Request[Any, Any, Any],
        variable_id: FromPath[uuid.UUID],
        data: JSONBody[wire.VariableUpdate],
        variable_service: NamedDependency[VariableService],
        workspace: WorkspaceQ = None,
    ) -> wire.Variable:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await variable_service.update(ws, variable_id, data, put=False)

    @delete(
        "/{variable_id:uuid}/",
        status_code=NO_CONTENT,
        summary="Delete a variable (409 while samples have values for it or the template uses it)",
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        variable_id: FromPath[uuid.UUID],
        variable_service: NamedDependency[VariableService],
        workspace: WorkspaceQ = None,
    ) -> None:
        await variable_service.delete(await workspace_for(_principal(request), workspace), variable_id)


class ImageController(_Base):
    path = "/vlm/v2/image"

    @get("/", summary="List images", responses=examples.image_page)
    async def list_images(
        self,
        request: Request[Any, Any, Any],
        image_service: NamedDependency[ImageService],
        workspace: WorkspaceQ = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.ImagePage:
        ws = await workspace_for(_principal(request), workspace)
        return to_page(
            wire.ImagePage, await image_service.listing(ws, page_request(request, page, page_size))
        )

    @post(
        "/",
        status_code=201,
        operation_class=UploadOperation,
        summary="Upload images: multipart files, or JSON with `_base64` / `_url` (or `records` of them)",
        description="One image gives the image record; several (`records`, or several files) give "
        '`{"records": [...]}`.',
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        image_service: NamedDependency[ImageService],
        workspace: WorkspaceQ = None,
    ) -> wire.Image | wire.ImageBatch:
        uploads, body_workspace, batch = await uploads_from_request(request)
        ws = await workspace_for(_principal(request), body_workspace, workspace)
        images = await image_service.upload(ws, uploads)
        return wire.ImageBatch(records=images) if batch else images[0]

    @get("/{image_id:uuid}/", summary="Get an image record", responses=examples.image())
    async def get_one(
        self,
        request: Request[Any, Any, Any],
        image_id: FromPath[uuid.UUID],
        image_service: NamedDependency[ImageService],
        workspace: WorkspaceQ = None,
    ) -> wire.Image:
        return await image_service.get(await workspace_for(_principal(request), workspace), image_id)

    @get("/{image_id:uuid}/file/", summary="Download an image's bytes", media_type="application/octet-stream")
    async def file(
        self,
        request: Request[Any, Any, Any],
        image_id: FromPath[uuid.UUID],
        image_service: NamedDependency[ImageService],
        workspace: WorkspaceQ = None,
    ) -> Response[bytes]:
        data, mime = await image_service.file(await workspace_for(_principal(request), workspace), image_id)
        return Response(data, media_type=mime)

    @delete(
        "/{image_id:uuid}/", summary="Delete an image (409 while a sample uses it)", status_code=NO_CONTENT
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        image_id: FromPath[uuid.UUID],
        image_service: NamedDependency[ImageService],
        workspace: WorkspaceQ = None,
    ) -> None:
        await image_service.delete(await workspace_for(_principal(request), workspace), image_id)


def to_page(cls: type[Any], page: Page) -> Any:
    return cls(count=page.count, next=page.next, previous=page.previous, results=page.results)
