"""HTTP routes of Ximilar's recognition API, ``/recognition/v2/...`` as its page and client have them.

Bodies are forms (``curl -F``) or JSON (``gateway.recognition.forms``); ``classify`` takes JSON. Handlers
receive the caller's workspace (``ws``) and page (``paging``) by injection and make one service call.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from gateway.auth import KeyedController
from gateway.dependencies import Page, Ws
from gateway.platform_api.crud import to_page
from gateway.recognition import schemas as wire
from gateway.recognition.api import RecognitionApi
from gateway.recognition.forms import FORMS, body_fields, convert, read_body
from gateway.recognition.openapi import form_operation
from gateway.recognition.training_images import label_ids, uploads_from_fields
from gateway.training import schemas as training_wire

Api = NamedDependency[RecognitionApi]
Search = Annotated[str | None, Parameter(description="only objects whose name contains this (any case)")]
TaskQ = Annotated[uuid.UUID | None, Parameter(description="only labels connected to this task (id)")]
LabelQ = Annotated[uuid.UUID | None, Parameter(description="only images with this label (id)")]
TaskForm = form_operation("name, description, type (multi_class | multi_label)",
                          name="string", description="string", type="string")  # fmt: skip
LabelForm = form_operation("name, description", name="string", description="string")
LabelRefForm = form_operation("the label: label_id (or its exact name)", label_id="uuid", name="string")
ImageForm = form_operation(
    "the image: a file `img_path`, or `_url` / `_base64`; optionally `label_id` (or `labels`)",
    img_path="binary",
    _url="string",
    _base64="string",
    label_id="uuid",
)
TrainForm = form_operation("optional: hyperparameters (JSON), seed")


class RecognitionController(KeyedController):
    tags = ["Recognition"]  # noqa: RUF012


class RecognitionTaskController(RecognitionController):
    path = "/recognition/v2/task"

    @get("/", summary="List recognition tasks")
    async def list_tasks(
        self, ws: Ws, paging: Page, recognition: Api, search: Search = None
    ) -> wire.RecognitionTaskPage:
        return to_page(wire.RecognitionTaskPage, await recognition.entities.task_listing(ws, paging, search))

    @post("/", summary="Create a task (multi_class by default, or multi_label)", operation_class=TaskForm)
    async def create(self, request: Request[Any, Any, Any], ws: Ws, recognition: Api) -> wire.RecognitionTask:
        return await recognition.entities.create_task(
            ws, await read_body(request, wire.RecognitionTaskCreate)
        )

    @get("/{task_id:uuid}/", summary="Get a task")
    async def get_one(self, task_id: FromPath[uuid.UUID], ws: Ws, recognition: Api) -> wire.RecognitionTask:
        return await recognition.entities.get_task(ws, task_id)

    @patch("/{task_id:uuid}/", summary="Change a task's name or description", operation_class=TaskForm)
    async def update(
        self, task_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.RecognitionTask:
        return await recognition.entities.update_task(
            ws, task_id, await read_body(request, wire.RecognitionTaskUpdate)
        )

    @put("/{task_id:uuid}/", summary="Replace a task's name and description", operation_class=TaskForm)
    async def replace(
        self, task_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.RecognitionTask:
        return await recognition.entities.update_task(
            ws, task_id, await read_body(request, wire.RecognitionTaskUpdate)
        )

    @delete("/{task_id:uuid}/", summary="Delete a task with its models (its labels stay)")
    async def remove(self, task_id: FromPath[uuid.UUID], ws: Ws, recognition: Api) -> None:
        await recognition.entities.delete_task(ws, task_id)

    @post(
        "/{task_id:uuid}/add-label/", status_code=200, summary="Connect a label", operation_class=LabelRefForm
    )
    async def add_label(
        self, task_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.RecognitionTask:
        return await recognition.entities.connect_label(ws, task_id, await read_body(request, wire.LabelRef))

    @post(
        "/{task_id:uuid}/remove-label/", status_code=200, summary="Disconnect a label",
        operation_class=LabelRefForm,
    )  # fmt: skip
    async def remove_label(
        self, task_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.RecognitionTask:
        ref = await read_body(request, wire.LabelRef)
        return await recognition.entities.disconnect_label(ws, task_id, ref)

    @post(
        "/{task_id:uuid}/train/", status_code=201, operation_class=TrainForm,
        summary="Train a new model version (>= 2 labels with >= 20 images each); the VLM training job",
    )  # fmt: skip
    async def train(
        self, task_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> training_wire.TrainingJob:
        job = await recognition.training.start(ws, task_id, await read_body(request, wire.TrainBody))
        return training_wire.job_out(job)


class LabelController(RecognitionController):
    path = "/recognition/v2/label"

    @get("/", summary="List labels (of a task with `task`, by name with `search`)")
    async def list_labels(
        self, ws: Ws, paging: Page, recognition: Api, task: TaskQ = None, search: Search = None
    ) -> wire.LabelPage:
        return to_page(wire.LabelPage, await recognition.entities.label_listing(ws, paging, task, search))

    @post("/", summary="Create a label", operation_class=LabelForm)
    async def create(self, request: Request[Any, Any, Any], ws: Ws, recognition: Api) -> wire.Label:
        return await recognition.entities.create_label(ws, await read_body(request, wire.LabelCreate))

    @get("/{label_id:uuid}/", summary="Get a label")
    async def get_one(self, label_id: FromPath[uuid.UUID], ws: Ws, recognition: Api) -> wire.Label:
        return await recognition.entities.get_label(ws, label_id)

    @patch("/{label_id:uuid}/", summary="Change a label's name or description", operation_class=LabelForm)
    async def update(
        self, label_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.Label:
        body = await read_body(request, wire.LabelUpdate)
        return await recognition.entities.update_label(ws, label_id, body)

    @delete("/{label_id:uuid}/", summary="Delete a label (from its tasks and images too)")
    async def remove(self, label_id: FromPath[uuid.UUID], ws: Ws, recognition: Api) -> None:
        await recognition.entities.delete_label(ws, label_id)


class TrainingImageController(RecognitionController):
    path = "/recognition/v2/training-image"

    @get("/", summary="List training images (of a label with `label`)")
    async def list_images(
        self, ws: Ws, paging: Page, recognition: Api, label: LabelQ = None, label_id: LabelQ = None
    ) -> wire.TrainingImagePage:
        page = await recognition.images.listing(ws, paging, label or label_id)
        return to_page(wire.TrainingImagePage, page)

    @post(
        "/",
        summary="Upload a training image (file `img_path`, `_url` or `_base64`)",
        operation_class=ImageForm,
    )
    async def upload(
        self, request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.TrainingImage | wire.TrainingImageBatch:
        fields, files = await body_fields(request)
        images = await recognition.images.upload(
            ws, await uploads_from_fields(fields, files), label_ids(fields)
        )
        return images[0] if len(images) == 1 else wire.TrainingImageBatch(records=images)

    @get("/{image_id:uuid}/", summary="Get a training image")
    async def get_one(self, image_id: FromPath[uuid.UUID], ws: Ws, recognition: Api) -> wire.TrainingImage:
        return await recognition.images.get(ws, image_id)

    @delete("/{image_id:uuid}/", summary="Delete a training image")
    async def remove(self, image_id: FromPath[uuid.UUID], ws: Ws, recognition: Api) -> None:
        await recognition.images.delete(ws, image_id)

    @post(
        "/{image_id:uuid}/add-label/", status_code=200, summary="Label an image", operation_class=LabelRefForm
    )
    async def add_label(
        self, image_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.TrainingImage:
        return await recognition.images.add_label(ws, image_id, await read_body(request, wire.LabelRef))

    @post(
        "/{image_id:uuid}/remove-label/", status_code=200, summary="Remove a label from an image",
        operation_class=LabelRefForm,
    )  # fmt: skip
    async def remove_label(
        self, image_id: FromPath[uuid.UUID], request: Request[Any, Any, Any], ws: Ws, recognition: Api
    ) -> wire.TrainingImage:
        return await recognition.images.remove_label(ws, image_id, await read_body(request, wire.LabelRef))


class ClassifyController(RecognitionController):
    path = "/recognition/v2/classify"

    @post("/", status_code=200, summary="Classify up to 10 records (`_url` or `_base64`) with a task's model")
    async def classify(
        self, data: JSONBody[wire.ClassifyRequest], ws: Ws, recognition: Api
    ) -> wire.ClassifyAnswer:
        return await recognition.classify.classify(ws, data)


RECOGNITION_CONTROLLERS = [
    RecognitionTaskController,
    LabelController,
    TrainingImageController,
    ClassifyController,
]
__all__ = ["FORMS", "RECOGNITION_CONTROLLERS", "convert"]
