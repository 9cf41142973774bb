"""``/v1/files``: files a workspace uploads for fine-tuning, stored in the model store.

Bytes live under ``files/<workspace>/<id>`` in the store (a local folder or a bucket, shared by every
gateway), the row in ``openai_file``. A ``fine-tune`` file is checked as a whole before anything is stored
(``training_file``): a bad file is refused with a 400 naming each bad line, never half-accepted.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

from gateway.db import models as db
from gateway.errors import BadRequestError, FieldsInvalidError, NotFoundError
from gateway.finetuning import schemas as wire
from gateway.finetuning.training_file import TrainingFileError, parse_lines, resolve_media
from gateway.media.pipeline import MediaPipeline
from models_store.store import Store

MAX_LIST = 10_000


class InvalidTrainingFile(BadRequestError):
    """A training or validation file that cannot be used; the message lists the bad lines."""

    default_code = "invalid_file"


def file_key(ws: uuid.UUID, row_id: uuid.UUID) -> str:
    return f"files/{ws}/{row_id}"


def file_out(row: db.OpenAIFile) -> wire.FileObject:
    return wire.FileObject(
        id=wire.file_id(row.id), bytes=row.bytes, created_at=int(row.created.timestamp()),
        filename=row.filename, purpose=row.purpose,
    )  # fmt: skip


def refused(exc: TrainingFileError, param: str, what: str) -> InvalidTrainingFile:
    return InvalidTrainingFile(f"The {what} cannot be used: {exc}", param=param)


class FileService:
    def __init__(self, store: Store, media: MediaPipeline) -> None:
        self.store = store
        self.media = media

    async def create(self, ws: uuid.UUID, filename: str, purpose: str, data: bytes) -> wire.FileObject:
        """Store an upload; a ``fine-tune`` file must be a valid training file (400 naming each bad line)."""
        if purpose not in wire.PURPOSES:
            raise FieldsInvalidError({"purpose": f"`{purpose}` is not one of {', '.join(wire.PURPOSES)}"})
        if not data:
            raise FieldsInvalidError({"file": "the file is empty"})
        lines = 0
        if purpose == "fine-tune":
            lines = await self.check_training_file(data, ws, "file", "file")
        row_id = uuid.uuid4()
        await asyncio.to_thread(self.store.write, file_key(ws, row_id), data)
        row = await db.OpenAIFile.create(
            id=row_id, workspace_id=ws, filename=filename[:255] or "upload.jsonl", purpose=purpose,
            bytes=len(data), lines=lines,
        )  # fmt: skip
        return file_out(row)

    async def check_training_file(self, data: bytes, ws: uuid.UUID, param: str, what: str) -> int:
        """The number of examples of a valid training file; ``InvalidTrainingFile`` otherwise."""
        try:
            lines = parse_lines(data)
            await resolve_media(self.media, lines, str(ws))
        except TrainingFileError as exc:
            raise refused(exc, param, what) from None
        return len(lines)

    async def row(self, ws: uuid.UUID, file_ref: str) -> db.OpenAIFile:
        row = await db.OpenAIFile.filter(
            id=wire.parse_id(file_ref, wire.FILE_PREFIX, "file"), workspace_id=ws
        ).first()
        if row is None:
            raise NotFoundError(f"No such file: `{file_ref}`.", code="file_not_found")
        return row

    async def get(self, ws: uuid.UUID, file_ref: str) -> wire.FileObject:
        return file_out(await self.row(ws, file_ref))

    async def content(self, ws: uuid.UUID, file_ref: str) -> tuple[bytes, str]:
        row = await self.row(ws, file_ref)
        return await asyncio.to_thread(self.store.read, file_key(ws, row.id)), row.filename

    async def listing(
        self, ws: uuid.UUID, purpose: str | None, limit: int, after: str | None, order: Literal["asc", "desc"]
    ) -> wire.FileList:
        query = db.OpenAIFile.filter(workspace_id=ws)
        if purpose:
            query = query.filter(purpose=purpose)
        if after:
            anchor = await self.row(ws, after)
            query = (
                query.filter(created__gt=anchor.created)
                if order == "asc"
                else query.filter(created__lt=anchor.created)
            )
        ordering = ("created", "id") if order == "asc" else ("-created", "-id")
        rows = await query.order_by(*ordering).limit(limit + 1)
        data = [file_out(r) for r in rows[:limit]]
        return wire.FileList(
            data=data, has_more=len(rows) > limit, first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )  # fmt: skip

    async def delete(self, ws: uuid.UUID, file_ref: str) -> wire.FileDeleted:
        """Delete a file; jobs that used it keep their own copy of its examples."""
        row = await self.row(ws, file_ref)
        await row.delete()
        await asyncio.to_thread(self.store.delete, file_key(ws, row.id))
        return wire.FileDeleted(id=wire.file_id(row.id))
