"""Training images: upload (multipart ``img_path``, ``_url``, ``_base64``), list (by label), label, delete.

The bytes are stored by the platform's ``ImageService`` (the same checks, limits and SSRF-guarded fetching
as every other upload); a ``TrainingImage`` row points at the stored image and carries the labels.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from litestar.datastructures import UploadFile

from gateway.db import models as db
from gateway.errors import FieldsInvalidError
from gateway.platform_api import schemas as platform_wire
from gateway.platform_api.common import Page, PageRequest, get_in_workspace, paginate, referenced
from gateway.platform_api.images import ImageService, Upload, image_file_url, records_from_json
from gateway.recognition import schemas as wire
from gateway.recognition.entities import RecognitionEntities, label_row

URL_FIELDS = ("_url", "url")
BASE64_FIELDS = ("_base64", "base64")


async def uploads_from_fields(fields: dict[str, Any], files: list[tuple[str, UploadFile]]) -> list[Upload]:
    """What one upload request names: its files, and a ``_url`` or ``_base64`` field."""
    uploads = [Upload(field=name, data=await f.read(), file_name=f.filename or "") for name, f in files]
    for name in (*URL_FIELDS, *BASE64_FIELDS):
        value = fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise FieldsInvalidError({name: "must be a string"})
        record = (
            platform_wire.ImageUpload(url=value)
            if name in URL_FIELDS
            else platform_wire.ImageUpload(base64=value)
        )
        uploads += [
            Upload(field=name, data=u.data, url=u.url, file_name=u.file_name)
            for u in records_from_json(record)
        ]
    if not uploads:
        raise FieldsInvalidError({"img_path": "no image given: send a file `img_path`, `_url` or `_base64`"})
    return uploads


def label_ids(fields: dict[str, Any]) -> list[uuid.UUID]:
    """Labels given with an upload: ``label_id`` or ``labels`` (one id, or a list of ids)."""
    given = fields.get("labels", fields.get("label_id"))
    values = given if isinstance(given, list) else ([] if given in (None, "") else [given])
    try:
        return [uuid.UUID(str(v)) for v in values]
    except ValueError:
        raise FieldsInvalidError({"labels": "must be label ids (UUIDs)"}) from None


class TrainingImages:
    def __init__(self, images: ImageService, entities: RecognitionEntities) -> None:
        self.images = images
        self.entities = entities

    async def upload(
        self, ws: uuid.UUID, uploads: Sequence[Upload], labels: Sequence[uuid.UUID]
    ) -> list[wire.TrainingImage]:
        rows = [await label_row_or_400(ws, label) for label in labels]  # checked before anything is stored
        stored = await self.images.upload(ws, uploads)
        created = [await db.TrainingImage.create(workspace_id=ws, image_id=image.id) for image in stored]
        for image in created:
            for label in rows:
                await db.TrainingImageLabel.create(image_id=image.id, label_id=label.id)
        return await render_images(created)

    async def listing(self, ws: uuid.UUID, page: PageRequest, label: uuid.UUID | None) -> Page:
        query = db.TrainingImage.filter(workspace_id=ws)
        if label is not None:
            await label_row(ws, label)
            query = query.filter(label_links__label_id=label)
        return await paginate(query.order_by("-created", "id"), page, render_images)

    async def get(self, ws: uuid.UUID, image_id: uuid.UUID) -> wire.TrainingImage:
        return (await render_images([await image_row(ws, image_id)]))[0]

    async def delete(self, ws: uuid.UUID, image_id: uuid.UUID) -> None:
        row = await image_row(ws, image_id)
        await row.delete()
        if not await db.TrainingImage.filter(image_id=row.image_id).exists():
            await self.images.delete(ws, row.image_id)  # the file goes with its last record

    async def add_label(self, ws: uuid.UUID, image_id: uuid.UUID, ref: wire.LabelRef) -> wire.TrainingImage:
        row = await image_row(ws, image_id)
        label = await self.entities.label_by_ref(ws, ref)
        await db.TrainingImageLabel.get_or_create(image_id=row.id, label_id=label.id)
        return await self.get(ws, image_id)

    async def remove_label(
        self, ws: uuid.UUID, image_id: uuid.UUID, ref: wire.LabelRef
    ) -> wire.TrainingImage:
        row = await image_row(ws, image_id)
        label = await self.entities.label_by_ref(ws, ref)
        if not await db.TrainingImageLabel.filter(image_id=row.id, label_id=label.id).delete():
            raise FieldsInvalidError({"label_id": f"label {label.id} is not on image {image_id}"})
        return await self.get(ws, image_id)


async def label_row_or_400(ws: uuid.UUID, label_id: uuid.UUID) -> db.RecognitionLabel:
    return await referenced(db.RecognitionLabel, label_id, ws, "labels", "label")


async def image_row(ws: uuid.UUID, image_id: uuid.UUID) -> db.TrainingImage:
    return await get_in_workspace(db.TrainingImage, image_id, ws, "Training image")


async def render_images(rows: Sequence[db.TrainingImage]) -> list[wire.TrainingImage]:
    ids = [r.id for r in rows]
    stored = {i.id: i for i in await db.Image.filter(id__in=[r.image_id for r in rows])}
    labels: dict[uuid.UUID, list[wire.LabelBrief]] = {}
    links = await db.TrainingImageLabel.filter(image_id__in=ids).prefetch_related("label").order_by("id")
    for link in links:
        labels.setdefault(link.image_id, []).append(wire.LabelBrief(id=link.label.id, name=link.label.name))
    out = []
    for r in rows:
        image = stored[r.image_id]
        out.append(
            wire.TrainingImage(
                id=r.id,
                img_path=image_file_url(image.id),
                thumb_img_path=image_file_url(image.id),
                img_width=image.width,
                img_height=image.height,
                labels=labels.get(r.id, []),
                meta_data=image.meta_data or {},
                created=r.created,
                workspace=r.workspace_id,
                image=image.id,
            )
        )
    return out
