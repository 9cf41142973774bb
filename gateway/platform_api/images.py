"""Workspace images: upload (multipart files, or JSON records: ``_base64`` / ``_url``), list, read, delete.

Bytes go to the content-addressed ``ImageStore`` (one file per distinct content, shared across records and
workspaces); each upload makes an ``Image`` row in its workspace. Deleting an image that a sample uses is
refused (409); deleting the last row that names a file deletes the file. ``_url`` records are fetched
through the media step's SSRF-guarded fetcher (the same address rules and limits as chat requests).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from gateway.db import models as db
from gateway.db.render import from_row
from gateway.errors import ConflictError, FieldsInvalidError
from gateway.media.errors import MediaError, MediaFileMissing
from gateway.media.fetch import Fetcher
from gateway.media.pipeline import decode_data_uri
from gateway.platform_api import schemas as wire
from gateway.platform_api.common import EntityService, Page, PageRequest, get_in_workspace, paginate
from models_store.image_store import ImageRejected, ImageStore, StoredImage, inspect_image

log = logging.getLogger("vlmgw.images")

MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


@dataclass(frozen=True)
class Upload:
    """One image to store: its bytes (or a URL to fetch), original file name and metadata."""

    field: str
    data: bytes | None = None
    url: str | None = None
    file_name: str = ""
    meta_data: dict[str, Any] | None = None


def image_file_url(image_id: uuid.UUID) -> str:
    return f"/vlm/v2/image/{image_id}/file/"


class ImageService(EntityService[db.Image, wire.Image]):
    model, what = db.Image, "Image"

    def __init__(self, store: ImageStore, fetcher: Fetcher | None, max_bytes: int) -> None:
        self.store = store
        self.fetcher = fetcher
        self.max_bytes = max_bytes

    async def listing(self, ws: uuid.UUID, page: PageRequest) -> Page:
        return await paginate(db.Image.filter(workspace_id=ws).order_by("-created", "id"), page, self.render)

    async def file(self, ws: uuid.UUID, image_id: uuid.UUID) -> tuple[bytes, str]:
        """The image's bytes and media type."""
        row = await get_in_workspace(db.Image, image_id, ws, "Image")
        return await self._bytes_of(row), MIME.get(row.format, "application/octet-stream")

    async def read(self, image_id: str, workspace: str | None) -> bytes:
        """``StoredImages`` for the media step (``image://ID`` in chat); ``KeyError`` when not there."""
        try:
            row = await db.Image.filter(
                id=uuid.UUID(image_id), workspace_id=uuid.UUID(workspace or "")
            ).first()
        except ValueError:  # not an id, or no workspace: never look across workspaces
            raise KeyError(image_id) from None
        if row is None:
            raise KeyError(image_id)
        return await self._bytes_of(row)

    async def _bytes_of(self, row: db.Image) -> bytes:
        """The stored file of an image record; a file gone from the store (deleted by hand, a store that
        lost it) is a 410 ``media_file_missing`` and an error in the log, not a 500."""
        try:
            return await asyncio.to_thread(self.store.read, row.sha256)
        except FileNotFoundError:
            log.error("image %s (workspace %s): its file %s is missing from the store", row.id,
                      row.workspace_id, row.sha256)  # fmt: skip
            raise MediaFileMissing(
                f"the file of stored image {row.id} is missing from the model store; upload the image again"
            ) from None

    async def upload(self, ws: uuid.UUID, uploads: Sequence[Upload]) -> list[wire.Image]:
        """Store every upload (all are checked before any row is written) and return the new records."""
        if not uploads:
            raise FieldsInvalidError({"file": "no image given: send a multipart file, `_base64` or `_url`"})
        blobs = await asyncio.gather(*(self._bytes(u) for u in uploads))
        problems: dict[str, str] = {}
        for upload, data in zip(uploads, blobs, strict=True):  # check all before writing any file
            try:
                await asyncio.to_thread(inspect_image, data, max_pixels=self.store.max_pixels)
            except ImageRejected as exc:
                problems[upload.field] = str(exc)
        if problems:
            raise FieldsInvalidError(problems)
        stored = [await asyncio.to_thread(self.store.put, data) for data in blobs]
        try:
            rows = await self._records(ws, uploads, stored)
        except BaseException:
            await self._drop_unreferenced({image.sha256 for image in stored})
            raise
        for row, data in zip(rows, blobs, strict=True):  # a concurrent delete of the same content
            if not self.store.exists(row.sha256):
                await asyncio.to_thread(self.store.put, data)
        return await self.render(rows)

    @staticmethod
    async def _records(ws: uuid.UUID, uploads: Sequence[Upload], stored: list[StoredImage]) -> list[db.Image]:
        rows = []
        async with in_transaction():
            for upload, image in zip(uploads, stored, strict=True):
                rows.append(
                    await db.Image.create(
                        workspace_id=ws,
                        sha256=image.sha256,
                        width=image.width,
                        height=image.height,
                        format=image.format,
                        size_bytes=image.size_bytes,
                        file_name=upload.file_name[:255],
                        meta_data=upload.meta_data or {},
                    )
                )
        return rows

    async def _drop_unreferenced(self, hashes: set[str]) -> None:
        """Delete the files of ``hashes`` that no record names (after a failed insert)."""
        named = set(await db.Image.filter(sha256__in=list(hashes)).values_list("sha256", flat=True))
        for digest in hashes - {str(h) for h in named}:
            await asyncio.to_thread(self.store.delete, digest)

    async def delete(self, ws: uuid.UUID, image_id: uuid.UUID) -> None:
        """Delete the record, refused while a sample uses it; the file goes with its last record."""
        row = await self.row(ws, image_id)
        samples = await db.SampleImage.filter(image=row).values_list("sample_id", flat=True)
        if samples:
            shown = ", ".join(str(s) for s in list(samples)[:5])
            raise ConflictError(
                f"Image {image_id} is used by {len(samples)} sample(s) ({shown}); remove it from them first "
                "(POST /vlm/v2/sample/SAMPLE_ID/remove-images/) or delete the samples.",
                code="image_in_use",
            )
        await row.delete()
        if not await db.Image.filter(sha256=row.sha256).exists():
            await asyncio.to_thread(self.store.delete, row.sha256)

    async def _bytes(self, upload: Upload) -> bytes:
        if upload.data is not None:
            if len(upload.data) > self.max_bytes:
                raise FieldsInvalidError({upload.field: f"larger than the limit of {self.max_bytes} bytes"})
            return upload.data
        assert upload.url is not None
        if self.fetcher is None:
            raise FieldsInvalidError({upload.field: "fetching URLs is not enabled on this gateway"})
        try:
            return (await self.fetcher.fetch(upload.url, self.max_bytes)).data
        except MediaError as exc:
            raise FieldsInvalidError({upload.field: exc.message}) from exc

    @staticmethod
    async def render(rows: Sequence[db.Image]) -> list[wire.Image]:
        return [from_row(wire.Image, r, file=image_file_url(r.id), meta_data=r.meta_data or {}) for r in rows]


def records_from_json(body: wire.ImageUpload) -> list[Upload]:
    """The uploads a JSON body names: its top-level record and/or each of ``records``."""
    records: list[tuple[str, wire.ImageRecord | wire.ImageUpload]] = []
    if body.base64 is not None or body.url is not None:
        records.append(("", body))
    records += [(f"records[{i}].", r) for i, r in enumerate(body.records or [])]
    if not records:
        raise FieldsInvalidError({"_base64": "give `_base64` or `_url` (or a list of them in `records`)"})
    return [_record(prefix, record) for prefix, record in records]


def _record(prefix: str, record: wire.ImageRecord | wire.ImageUpload) -> Upload:
    if (record.base64 is None) == (record.url is None):
        raise FieldsInvalidError({f"{prefix}_base64": "give exactly one of `_base64` and `_url`"})
    name, meta = record.file_name, record.meta_data
    if record.url is not None:
        if not record.url.lower().startswith(("http://", "https://")):
            raise FieldsInvalidError({f"{prefix}_url": "must be an http:// or https:// URL"})
        return Upload(field=f"{prefix}_url", url=record.url, file_name=name, meta_data=meta)
    data = decode_base64(record.base64 or "", f"{prefix}_base64")
    return Upload(field=f"{prefix}_base64", data=data, file_name=name, meta_data=meta)


def decode_base64(text: str, field: str) -> bytes:
    """Raw base64 or a ``data:`` URI."""
    try:
        if text.startswith("data:"):
            return decode_data_uri(text, 1 << 40)
        return base64.b64decode("".join(text.split()), validate=True)
    except MediaError as exc:
        raise FieldsInvalidError({field: exc.message}) from exc
    except (binascii.Error, ValueError) as exc:
        raise FieldsInvalidError({field: "is not valid base64"}) from exc
