"""POST /recognition/v2/classify/: up to 10 records classified by a task's version, each with its own status.

Each record's image (``_url`` through the SSRF-guarded fetcher, or ``_base64``) is read and checked on its
own: a bad record gets ``_status`` 400 with the reason and the others are answered. The version is the
task's production version unless ``version`` names another; a task that was never trained is a 400.
``descriptor: 1`` adds ``_descriptor`` (``gateway.recognition.descriptors``) to every answered record.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.catalog.names import version_model_name
from gateway.db import models as db
from gateway.errors import BadRequestError, FieldsInvalidError, GatewayError, NotFoundError
from gateway.media.errors import MediaError
from gateway.media.fetch import Fetcher
from gateway.platform_api.images import MIME, decode_base64
from gateway.recognition import schemas as wire
from gateway.recognition.classifier import Classifier, ClassifierSpec
from gateway.recognition.descriptors import Descriptors
from gateway.recognition.entities import RecognitionEntities
from models_store.image_store import ImageRejected, inspect_image

OK = wire.Status(code=200, text="OK")


class RecordError(Exception):
    """A record that cannot be classified: its ``_status``."""


@dataclass
class Recognition:
    """The classify service: what it needs to read records and ask a task's version about them."""

    entities: RecognitionEntities
    classifier: Classifier
    descriptors: Descriptors
    fetcher: Fetcher | None
    max_bytes: int
    max_pixels: int

    async def classify(self, ws: uuid.UUID, body: wire.ClassifyRequest) -> wire.ClassifyAnswer:
        started = time.monotonic()
        if len(body.records) > wire.MAX_RECORDS:
            raise FieldsInvalidError(
                {"records": f"{len(body.records)} records given; at most {wire.MAX_RECORDS} per request"}
            )
        row = await self.entities.task_row(ws, body.task_id)
        version, spec = await self._version(row, body.version)
        model = version_model_name(row.task_id, version)
        images = await asyncio.gather(*(self._image(i, r) for i, r in enumerate(body.records)))
        vectors = await self._descriptors(images) if body.descriptor else {}
        records = await asyncio.gather(
            *(self._record(ws, model, spec, r, image, vectors.get(i)) for i, (r, image) in
              enumerate(zip(body.records, images, strict=True)))
        )  # fmt: skip
        return wire.ClassifyAnswer(
            task_id=row.id,
            status=OK,
            statistics={"processing time": round(time.monotonic() - started, 5)},
            descriptor=int(bool(body.descriptor)),
            version=version,
            records=list(records),
        )

    async def _version(self, row: db.RecognitionTask, asked: int | None) -> tuple[int, ClassifierSpec]:
        task = await db.Task.get(id=row.task_id)
        number = asked if asked is not None else task.production_version
        if asked is None and number <= 0:
            raise BadRequestError(
                f"Task {row.id} has no trained model yet (production_version -1): train it first "
                f"(POST /recognition/v2/task/{row.id}/train/) and wait for the training to succeed.",
                param="task_id", code="task_not_trained",
            )  # fmt: skip
        version = await db.ModelVersion.filter(task_id=row.task_id, version=number).first()
        if version is None or "classifier" not in (version.metrics or {}):
            raise NotFoundError(f"Task {row.id} has no model version {number}.", param="version")
        return number, msgspec.convert(version.metrics["classifier"], ClassifierSpec)

    async def _image(self, index: int, record: dict[str, Any]) -> bytes | RecordError:
        """The record's image bytes, or the reason it has none (never raises for one bad record)."""
        url, data = record.get("_url"), record.get("_base64")
        try:
            if (url is None) == (data is None):
                raise RecordError("give exactly one of `_url` and `_base64`")
            if data is not None:
                if not isinstance(data, str):
                    raise RecordError("`_base64` must be a string")
                raw = decode_base64(data, f"records[{index}]._base64")
            else:
                raw = await self._fetch(url)
            if len(raw) > self.max_bytes:
                raise RecordError(f"the image is larger than the limit of {self.max_bytes} bytes")
            await asyncio.to_thread(inspect_image, raw, max_pixels=self.max_pixels)
            return raw
        except RecordError as exc:
            return exc
        except ImageRejected as exc:
            return RecordError(str(exc))
        except FieldsInvalidError as exc:
            return RecordError("; ".join(exc.fields.values()))

    async def _fetch(self, url: Any) -> bytes:
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise RecordError("`_url` must be an http:// or https:// URL")
        if self.fetcher is None:
            raise RecordError("fetching URLs is not enabled on this gateway")
        try:
            return (await self.fetcher.fetch(url, self.max_bytes)).data
        except MediaError as exc:
            raise RecordError(exc.message) from None

    async def _descriptors(self, images: list[bytes | RecordError]) -> dict[int, list[float]]:
        good = [(i, image) for i, image in enumerate(images) if isinstance(image, bytes)]
        vectors = await self.descriptors.embed([image for _, image in good]) if good else []
        return {i: v for (i, _), v in zip(good, vectors, strict=True)}

    async def _record(
        self, ws: uuid.UUID, model: str, spec: ClassifierSpec, record: dict[str, Any],
        image: bytes | RecordError, vector: list[float] | None,
    ) -> dict[str, Any]:  # fmt: skip
        echoed = {k: v for k, v in record.items() if k != "_base64"}
        if isinstance(image, RecordError):
            return {**echoed, "_status": {"code": 400, "text": str(image)}}
        width, height, fmt = inspect_image(image, max_pixels=self.max_pixels)
        uri = f"data:{MIME.get(fmt, 'image/png')};base64," + base64.b64encode(image).decode()
        try:
            pairs = await self.classifier.probabilities(model, spec, uri, ws)
        except GatewayError as exc:
            if exc.status_code >= 500:
                raise
            return {**echoed, "_status": {"code": exc.status_code, "text": exc.message}}
        labels = [
            wire.LabelProb(prob=round(p, 5), name=label.name, id=uuid.UUID(label.id)) for label, p in pairs
        ]
        out = wire.RecordResult(status=OK, best_label=labels[0], labels=labels, width=width, height=height)
        result: dict[str, Any] = {**echoed, **msgspec.to_builtins(out)}
        if vector is not None:
            result["_descriptor"] = vector
        return result
