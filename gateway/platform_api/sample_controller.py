"""HTTP routes for samples: ``/vlm/v2/sample/...`` with Ximilar's actions (add-images, set-test, ...)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from gateway.platform_api import schemas as wire
from gateway.platform_api.common import DEFAULT_PAGE_SIZE, workspace_for
from gateway.platform_api.controllers import (
    NO_CONTENT,
    DatasetQ,
    PageNo,
    PageSize,
    Search,
    WorkspaceQ,
    _Base,
    _principal,
    page_request,
    to_page,
)
from gateway.platform_api.openapi import examples
from gateway.platform_api.samples import SampleService

Sid = FromPath[uuid.UUID]
Samples = NamedDependency[SampleService]
Req = Request[Any, Any, Any]
TestQ = Annotated[bool | None, Parameter(description="only test (true) or only training (false) samples")]


class SampleController(_Base):
    path = "/vlm/v2/sample"

    @get("/", summary="List samples", responses=examples.sample_page)
    async def list_samples(
        self,
        request: Req,
        sample_service: Samples,
        workspace: WorkspaceQ = None,
        dataset: DatasetQ = None,
        test: TestQ = None,
        search: Search = None,
        page: PageNo = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> wire.SamplePage:
        ws = await workspace_for(_principal(request), workspace)
        result = await sample_service.listing(
            ws, page_request(request, page, page_size), dataset, test, search
        )
        return to_page(wire.SamplePage, result)

    @post("/", summary="Create a sample", status_code=201, responses=examples.sample(201))
    async def create(
        self,
        request: Req,
        data: JSONBody[wire.SampleCreate],
        sample_service: Samples,
        workspace: WorkspaceQ = None,
    ) -> wire.Sample:
        return await sample_service.create(
            await workspace_for(_principal(request), data.workspace, workspace), data
        )

    @get("/{sample_id:uuid}/", summary="Get a sample with its images and values", responses=examples.sample())
    async def get_one(
        self, request: Req, sample_id: Sid, sample_service: Samples, workspace: WorkspaceQ = None
    ) -> wire.Sample:
        return await sample_service.get(await workspace_for(_principal(request), workspace), sample_id)

    @put("/{sample_id:uuid}/", summary="Replace a sample's fields (`input_meta_data` replaced)")
    async def replace(
        self,
        request: Req,
        sample_id: Sid,
        data: JSONBody[wire.SampleUpdate],
        sample_service: Samples,
        workspace: WorkspaceQ = None,
    ) -> wire.Sample:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await sample_service.update(ws, sample_id, data, put=True)

    @patch(
        "/{sample_id:uuid}/",
        responses=examples.sample(),
        summary="Update a sample: `type`, `name`, `test`; `input_meta_data` is merged into what is there",
    )
    async def update(
        self,
        request: Req,
        sample_id: Sid,
        data: JSONBody[wire.SampleUpdate],
        sample_service: Samples,
        workspace: WorkspaceQ = None,
    ) -> wire.Sample:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await sample_service.update(ws, sample_id, data, put=False)

    @delete("/{sample_id:uuid}/", summary="Delete a sample (its images stay)", status_code=NO_CONTENT)
    async def remove(
        self, request: Req, sample_id: Sid, sample_service: Samples, workspace: WorkspaceQ = None
    ) -> None:
        await sample_service.delete(await workspace_for(_principal(request), workspace), sample_id)

    @post("/{sample_id:uuid}/add-images/", summary="Append uploaded images (at most 10)", status_code=200)
    async def add_images(
        self,
        request: Req,
        sample_id: Sid,
        data: JSONBody[wire.ImageIds],
        sample_service: Samples,
        workspace: WorkspaceQ = None,
    ) -> wire.Sample:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await sample_service.add_images(ws, sample_id, data)

    @post("/{sample_id:uuid}/remove-images/", summary="Remove images from a sample", status_code=200)
    async def remove_images(
        self,
        request: Req,
        sample_id: Sid,
        data: JSONBody[wire.ImageIds],
        sample_service: Samples,
        workspace: WorkspaceQ = None,
    ) -> wire.Sample:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await sample_service.remove_images(ws, sample_id, data)

    @post("/{sample_id:uuid}/set-test/", summary="Mark as a test sample", status_code=200)
    async def set_test(
        self, request: Req, sample_id: Sid, sample_service: Samples, workspace: WorkspaceQ = None
    ) -> wire.Sample:
        return await sample_service.set_test(
            await workspace_for(_principal(request), workspace), sample_id, True
        )

    @post("/{sample_id:uuid}/set-untest/", summary="Mark as a training sample", status_code=200)
    async def set_untest(
        self, request: Req, sample_id: Sid, sample_service: Samples, workspace: WorkspaceQ = None
    ) -> wire.Sample:
        ws = await workspace_for(_principal(request), workspace)
        return await sample_service.set_test(ws, sample_id, False)

    @post(
        "/{sample_id:uuid}/add-variable-value/",
        status_code=200,
        responses=examples.sample(),
        summary='Set the sample\'s value of a variable (`{"value": X}`, checked against the variable)',
    )
    async def add_value(
        self,
        request: Req,
        sample_id: Sid,
        data: JSONBody[wire.VariableValueSet],
        sample_service: Samples,
        workspace: WorkspaceQ = None,
    ) -> wire.Sample:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await sample_service.set_value(ws, sample_id, data)

    @post("/{sample_id:uuid}/remove-variable-value/", summary="Remove a variable's value", status_code=200)
    async def remove_value(
        self,
        request: Req,
        sample_id: Sid,
        data: JSONBody[wire.VariableValueRef],
        sample_service: Samples,
        workspace: WorkspaceQ = None,
    ) -> wire.Sample:
        ws = await workspace_for(_principal(request), data.workspace, workspace)
        return await sample_service.remove_value(ws, sample_id, data)
