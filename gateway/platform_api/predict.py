"""Task inference: images and ``input_meta_data`` in, the template-constrained answer and its typed variables
out (``POST /vlm/v2/task/{id}/predict/``).

The prompt is built exactly as for training (the dataset's prompts, else the task's, with ``{{key}}``
placeholders filled from ``input_meta_data``), the answer is constrained by the dataset's result template and
parsed back into typed values, so a success always carries values that obey their variables' rules. Images
come as records, the way Ximilar's APIs take them: ``{"_base64": ...}``, ``{"_url": ...}`` (fetched by the
gateway behind its SSRF guard) or ``{"_id": ...}`` (an image stored in the workspace). Without a trained
version the base model answers under the same constraint (``version: 0``), which is the zero-shot baseline.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from finetune.examples import fill_prompt
from gateway.catalog.names import version_model_name
from gateway.db import models as db
from gateway.errors import BadRequestError, ConflictError, FieldsInvalidError
from gateway.openai_api.chat import ChatService
from gateway.openai_api.protocol import ChatCompletionRequest, Usage
from gateway.platform_api.common import MAX_DB_INT, get_in_workspace
from gateway.training.data import dataset_template, missing_variables


class ImageRecord(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One image as Ximilar's APIs take records: exactly one of ``_base64``, ``_url``, ``_id``."""

    base64: str | None = msgspec.field(default=None, name="_base64")
    url: str | None = msgspec.field(default=None, name="_url")
    id: uuid.UUID | None = msgspec.field(default=None, name="_id")


class PredictRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    images: Annotated[list[ImageRecord], Meta(min_length=1, max_length=10)]
    input_meta_data: dict[str, Any] = msgspec.field(default_factory=dict)
    version: Annotated[int, Meta(ge=0, le=MAX_DB_INT)] | None = None
    dataset: uuid.UUID | None = None
    workspace: str | None = None


class Prediction(msgspec.Struct, kw_only=True):
    task: uuid.UUID
    model: str
    version: int
    text: str
    variables: dict[str, Any]
    finish_reason: str | None
    usage: Usage | None


def _image_url(record: ImageRecord, index: int) -> str:
    given = [v for v in (record.base64, record.url, record.id) if v is not None]
    if len(given) != 1:
        raise FieldsInvalidError({f"images[{index}]": "give exactly one of `_base64`, `_url`, `_id`"})
    if record.base64 is not None:  # the media pipeline sniffs the real format; the claimed type is a label
        data = record.base64
        return data if data.startswith("data:") else f"data:image/unknown;base64,{data}"
    if record.url is not None:
        return record.url
    return f"image://{record.id}"


class TaskInference:
    """Answers ``predict`` calls through the chat service (which resolves the model through the catalog)."""

    def __init__(self, chat: ChatService, served_base_name: str) -> None:
        self.chat = chat
        self.base = served_base_name

    async def predict(self, ws: uuid.UUID, task_id: uuid.UUID, body: PredictRequest) -> Prediction:
        task = await get_in_workspace(db.Task, task_id, ws, "Task")
        version = task.production_version if body.version is None else body.version
        if version and not await db.ModelVersion.filter(task=task, version=version).exists():
            raise FieldsInvalidError({"version": f"task {task.id} has no version {version}"})
        dataset = await self._dataset(task, body.dataset)
        if missing := await missing_variables(dataset):
            raise ConflictError(
                "the dataset's result_template names variables not defined yet: " + ", ".join(missing),
                code="template_incomplete",
            )
        compiled = await dataset_template(task, dataset)
        try:
            user = fill_prompt(compiled.user_prompt, body.input_meta_data)
        except KeyError as exc:
            raise FieldsInvalidError({"input_meta_data": f"the prompt needs `{exc.args[0]}`"}) from None
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": _image_url(r, i)}} for i, r in enumerate(body.images)
        ]
        content.append({"type": "text", "text": user})
        system = [{"role": "system", "content": compiled.system_prompt}] if compiled.system_prompt else []
        model = version_model_name(task.id, version) if version else self.base
        request = msgspec.convert(
            {
                "model": model,
                "messages": [*system, {"role": "user", "content": content}],
                "temperature": 0,
                "max_tokens": task.max_tokens,
                "structured_outputs": {"regex": compiled.template.regex()},
            },
            ChatCompletionRequest,
        )
        result = await self.chat.complete(request, str(ws))
        choice = result.choices[0]
        text = choice.message.content or ""
        if choice.finish_reason == "length":
            raise BadRequestError(
                f"the answer was cut off at max_tokens={task.max_tokens}; raise the task's max_tokens",
                code="answer_truncated",
            )
        return Prediction(
            task=task.id, model=model, version=version, text=text,
            variables=compiled.template.parse(text), finish_reason=choice.finish_reason, usage=result.usage,
        )  # fmt: skip

    @staticmethod
    async def _dataset(task: db.Task, dataset_id: uuid.UUID | None) -> db.Dataset:
        links = await db.TaskDataset.filter(task=task).prefetch_related("dataset").order_by("created")
        usable = [link.dataset for link in links if link.dataset.result_template.strip()]
        if dataset_id is not None:
            usable = [d for d in usable if d.id == dataset_id]
            if not usable:
                raise FieldsInvalidError({"dataset": f"dataset {dataset_id} is not attached with a template"})
        if not usable:
            raise FieldsInvalidError({"task": "the task has no dataset with a result_template"})
        return usable[0]
