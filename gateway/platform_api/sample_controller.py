"""HTTP routes for samples: ``/vlm/v2/sample/...``, the CRUD shape with Ximilar's actions (add-images,
add-variable-value, ...), plus set-test and set-untest."""

from __future__ import annotations

import uuid

from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromPath

from gateway.dependencies import Ws
from gateway.platform_api import schemas as wire
from gateway.platform_api.controllers import DatasetQ, PlatformController, Search, TestQ
from gateway.platform_api.crud import Action, Resource, with_crud
from gateway.platform_api.openapi import examples
from gateway.platform_api.samples import SampleService

Sid = FromPath[uuid.UUID]
Samples = NamedDependency[SampleService]

SAMPLES = Resource(
    "sample", "samples", wire.Sample, wire.SamplePage, wire.SampleCreate, wire.SampleUpdate,
    filters=(("dataset", DatasetQ), ("test", TestQ), ("search", Search)),
    summaries={
        "get": "Get a sample with its images and values",
        "replace": "Replace a sample's fields (`input_meta_data` replaced)",
        "update": "Update a sample: `type`, `name`, `test`; `input_meta_data` is merged into what is there",
        "remove": "Delete a sample (its images stay)",
    },
    example=examples.sample, page_example=examples.sample_page, responses={"update": examples.sample()},
    actions=(
        Action("add_images", "Append uploaded images (at most 10)", wire.ImageIds),
        Action("remove_images", "Remove images from a sample", wire.ImageIds),
        Action(
            "add_value",
            'Set the sample\'s value of a variable (`{"value": X}`, checked against the variable)',
            wire.VariableValueSet, path="add-variable-value", call="set_value", responses=examples.sample(),
        ),
        Action(
            "remove_value", "Remove a variable's value", wire.VariableValueRef, path="remove-variable-value"
        ),
    ),
)  # fmt: skip


@with_crud(SAMPLES)
class SampleController(PlatformController):
    path = "/vlm/v2/sample"

    @post("/{sample_id:uuid}/set-test/", summary="Mark as a test sample", status_code=200)
    async def set_test(self, sample_id: Sid, sample_service: Samples, ws: Ws) -> wire.Sample:
        return await sample_service.set_test(ws, sample_id, True)

    @post("/{sample_id:uuid}/set-untest/", summary="Mark as a training sample", status_code=200)
    async def set_untest(self, sample_id: Sid, sample_service: Samples, ws: Ws) -> wire.Sample:
        return await sample_service.set_test(ws, sample_id, False)
