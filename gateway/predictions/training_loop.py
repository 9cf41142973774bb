"""The machine-learning loop: a prediction's images and answer become a sample of a dataset in the caller's
workspace, to be reviewed (and corrected) with the platform API and trained on (Ximilar's FAQ calls this
the machine-learning loop).

With ``metadata.allow_training`` (vlm.run's default) and a ``session_id`` the dataset is ``session <id>``;
``metadata.dataset`` names one directly. The dataset is made on first use through the platform services,
with the prediction's prompt as its user prompt and variables that mirror the answer schema: one variable
per top-level field when every field fits the platform's variable types (scalars, arrays of scalars,
shallow objects), with a JSON result template; otherwise one string variable ``response`` holding the
answer's JSON, with the template ``{{response}}``. A dataset that already holds answers of another shape is
refused when the prediction is requested (409), before any work is done.
"""

from __future__ import annotations

import asyncio
import json
import keyword
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from gateway.db import models as db
from gateway.errors import ConflictError, GatewayError
from gateway.platform_api import schemas as wire
from gateway.platform_api.images import ImageService, Upload
from gateway.platform_api.samples import SampleService
from gateway.platform_api.tasks import DatasetService
from gateway.platform_api.variables import VariableService
from gateway.predictions.intake import MediaItem
from gateway.predictions.plan import Plan, TrainingTarget
from gateway.predictions.schemas import RequestMetadata, TrainingSample

log = logging.getLogger("vlmgw.predictions")

JSON_VARIABLE = "response"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_SCALAR = {"string": "string", "integer": "integer", "number": "float", "boolean": "boolean"}


@dataclass(frozen=True)
class Layout:
    """The dataset's variables (name, type, required) and its result template."""

    variables: tuple[tuple[str, str, bool], ...]
    template: str

    def shape(self) -> set[tuple[str, str]]:
        return {(name, kind) for name, kind, _ in self.variables}


def target_for(metadata: RequestMetadata) -> TrainingTarget | None:
    """Where to store the prediction, or None when the request asks for no storage."""
    if not metadata.allow_training or not (metadata.dataset or metadata.session_id):
        return None
    if metadata.dataset:
        return TrainingTarget(metadata.dataset, "metadata.dataset", metadata.session_id, metadata.environment)
    name = f"session {metadata.session_id}"[:200]
    return TrainingTarget(name, "metadata.session_id", metadata.session_id, metadata.environment)


def layout_for(schema: dict[str, Any]) -> Layout:
    """Typed variables when every top-level field fits one, else the one JSON string variable."""
    props = schema.get("properties")
    required = set(schema.get("required") or [])
    typed = []
    if schema.get("type") == "object" and isinstance(props, dict) and props:
        typed = [(name, _variable_type(sub), name in required) for name, sub in props.items()]
    if typed and all(kind and _NAME.match(name) and not keyword.iskeyword(name) for name, kind, _ in typed):
        fields = ", ".join(
            f'"{name}": "{{{{{name}}}}}"' if kind == "string" else f'"{name}": {{{{{name}}}}}'
            for name, kind, _ in typed
        )
        return Layout(tuple((n, str(k), r) for n, k, r in typed), "{" + fields + "}")
    return Layout(((JSON_VARIABLE, "string", True),), "{{" + JSON_VARIABLE + "}}")


def _variable_type(schema: Any, depth: int = 0) -> str | None:
    if not isinstance(schema, dict) or "$ref" in schema:
        return None
    kind = schema.get("type")
    if kind in _SCALAR:
        return _SCALAR[kind]
    if kind == "array":
        return "array" if _variable_type(schema.get("items"), depth) in _SCALAR.values() else None
    if kind == "object" and depth < 2 and isinstance(schema.get("properties"), dict):
        inner = [_variable_type(sub, depth + 1) for sub in schema["properties"].values()]
        return "object" if all(inner) else None
    return None


def values_for(layout: Layout, answer: Any) -> dict[str, Any]:
    """The variable values of an answer."""
    if layout.variables[0][0] == JSON_VARIABLE and len(layout.variables) == 1:
        return {JSON_VARIABLE: json.dumps(answer, ensure_ascii=False, separators=(",", ":"))}
    return {name: answer[name] for name, _, _ in layout.variables if name in answer}


@dataclass(eq=False)
class TrainingLoop:
    """Stores predictions as dataset samples through the platform API's services."""

    images: ImageService
    datasets: DatasetService
    variables: VariableService
    samples: SampleService
    _locks: dict[tuple[uuid.UUID, str], asyncio.Lock] = field(default_factory=dict, init=False)

    async def check(self, ws: uuid.UUID, target: TrainingTarget, schema: dict[str, Any]) -> None:
        """Refuse (409) a dataset that holds samples of another shape than this answer schema's."""
        dataset = await _find(ws, target.dataset)
        if dataset is None:
            return
        have = {(v.name, v.type) for v in await db.Variable.filter(dataset_id=dataset.id)}
        if have != layout_for(schema).shape():
            raise ConflictError(
                f"The dataset `{target.dataset}` holds answers of another shape (variables "
                f"{sorted(n for n, _ in have)}); use another session or dataset for this schema",
                param=target.param,
                code="dataset_shape_mismatch",
            )

    async def store(
        self, ws: uuid.UUID, plan: Plan, media: list[MediaItem], answer: Any, prediction_id: uuid.UUID
    ) -> TrainingSample:
        """Store the sample; a failure is reported in the result, never raised (the prediction stands)."""
        assert plan.training is not None
        layout = layout_for(plan.schema)
        try:
            dataset, variables = await self._dataset(ws, plan.training, plan.prompt, layout)
            sample = await self._sample(ws, dataset, plan, media, prediction_id)
            for name, value in values_for(layout, answer).items():
                body = wire.VariableValueSet(dataset_variable=variables[name], value={"value": value})
                await self.samples.set_value(ws, sample, body)
        except GatewayError as exc:
            return TrainingSample(error=exc.message)
        except Exception as exc:
            log.exception("prediction %s: storing the training sample failed", prediction_id)
            return TrainingSample(error=f"storing the sample failed: {type(exc).__name__}")
        return TrainingSample(dataset=str(dataset), sample=str(sample))

    async def _sample(
        self, ws: uuid.UUID, dataset: uuid.UUID, plan: Plan, media: list[MediaItem], prediction_id: uuid.UUID
    ) -> uuid.UUID:
        """A new sample of ``dataset`` with the prediction's images (stored in the workspace) in order."""
        assert plan.training is not None
        uploads = [
            Upload(f"images[{i}]", data=item.data, file_name=f"{prediction_id}-{i}")
            for i, item in enumerate(media)
        ]
        images = await self.images.upload(ws, uploads)
        meta = {
            "prediction_id": str(prediction_id),
            "domain": plan.domain,
            "session_id": plan.training.session_id,
            "environment": plan.training.environment,
        }
        body = wire.SampleCreate(
            dataset=dataset,
            name=str(prediction_id),
            input_meta_data=meta,
            image_ids=[image.id for image in images],
            type="single" if len(images) == 1 else "multi_ordered",
        )
        return (await self.samples.create(ws, body)).id

    async def _dataset(
        self, ws: uuid.UUID, target: TrainingTarget, prompt: str, layout: Layout
    ) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
        """The dataset (made on first use, once per name in this gateway) and its variable ids by name."""
        lock = self._locks.setdefault((ws, target.dataset), asyncio.Lock())
        async with lock:
            dataset = await _find(ws, target.dataset)
            if dataset is None:
                return await self._create(ws, target, prompt, layout)
        rows = await db.Variable.filter(dataset_id=dataset.id)
        if {(v.name, v.type) for v in rows} != layout.shape():
            raise ConflictError(f"the dataset `{target.dataset}` now holds answers of another shape")
        return dataset.id, {v.name: v.id for v in rows}

    async def _create(
        self, ws: uuid.UUID, target: TrainingTarget, prompt: str, layout: Layout
    ) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
        dataset = await self.datasets.create(ws, wire.DatasetCreate(
            name=target.dataset, user_prompt=prompt,
            description="Predictions stored by the machine-learning loop (POST /v1/image/generate)",
        ))  # fmt: skip
        ids = {}
        for name, kind, required in layout.variables:
            body = wire.VariableCreate(dataset=dataset.id, name=name, type=kind, required=required)  # type: ignore[arg-type]
            ids[name] = (await self.variables.create(ws, body)).id
        update = wire.DatasetUpdate(result_template=layout.template)
        await self.datasets.update(ws, dataset.id, update, put=False)
        return dataset.id, ids


async def _find(ws: uuid.UUID, name: str) -> db.Dataset | None:
    return await db.Dataset.filter(workspace_id=ws, name=name).order_by("created", "id").first()
