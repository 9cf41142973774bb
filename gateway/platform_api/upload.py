"""Reading an image upload request: multipart form files, or a JSON body of records (``_base64``/``_url``)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile

from gateway.errors import FieldsInvalidError
from gateway.platform_api import schemas as wire
from gateway.platform_api.images import Upload, records_from_json


async def uploads_from_request(request: Request[Any, Any, Any]) -> tuple[list[Upload], bool]:
    """The uploads and whether the answer is a batch (``records``). The body's ``workspace`` field is read
    by the ``ws`` dependency (``gateway.dependencies``)."""
    media_type = request.content_type[0]
    if media_type == "multipart/form-data":
        return await _from_form(request)
    if media_type == "application/json":
        body = msgspec.json.decode(await request.body(), type=wire.ImageUpload)
        return records_from_json(body), body.records is not None
    raise FieldsInvalidError(
        {"Content-Type": f"`{media_type or 'none'}`: send multipart/form-data files or application/json"}
    )


async def _from_form(request: Request[Any, Any, Any]) -> tuple[list[Upload], bool]:
    form = await request.form()
    uploads: list[Upload] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            uploads.append(Upload(field=name, data=data, file_name=value.filename or ""))
        elif name in ("_base64", "_url"):
            text = str(value)
            record = wire.ImageUpload(base64=text) if name == "_base64" else wire.ImageUpload(url=text)
            uploads += records_from_json(record)
    return uploads, len(uploads) > 1
