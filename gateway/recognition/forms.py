"""Request bodies as Ximilar's clients send them: ``curl -F`` multipart forms, url-encoded forms or JSON.

All three are read into the same msgspec Struct; form values are strings, converted as a form would be
(``"1"`` -> 1). An empty body is an empty object, so actions without fields (train) accept it.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile

from gateway.errors import FieldsInvalidError

T = TypeVar("T")
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


async def body_fields(request: Request[Any, Any, Any]) -> tuple[dict[str, Any], list[tuple[str, UploadFile]]]:
    """The body's fields and its uploaded files (forms only)."""
    media_type = request.content_type[0]
    if media_type in FORMS:
        form = await request.form()
        fields: dict[str, Any] = {}
        files: list[tuple[str, UploadFile]] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append((name, value))
            else:
                fields[name] = value
        return fields, files
    raw = await request.body()
    if not raw.strip():
        return {}, []
    if media_type not in ("application/json", "text/plain", ""):
        wanted = "application/json, multipart/form-data or a url-encoded form"
        raise FieldsInvalidError({"Content-Type": f"`{media_type}`: send {wanted}"})
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise FieldsInvalidError({"body": f"is not valid JSON ({exc})"}) from None
    if not isinstance(value, dict):
        raise FieldsInvalidError({"body": "must be a JSON object"})
    return value, []


def convert(fields: dict[str, Any], kind: type[T], *, from_form: bool = False) -> T:
    """``fields`` as ``kind``; a 400 naming the field when one is missing, unknown or of the wrong type."""
    try:
        return msgspec.convert(fields, kind, strict=not from_form)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rsplit("`$.", 1)[1].rstrip("`").split("[")[0] if "`$." in text else "body"
        raise FieldsInvalidError({field: text}) from None


async def read_body(request: Request[Any, Any, Any], kind: type[T]) -> T:
    """The body as ``kind`` (forms without files)."""
    fields, _ = await body_fields(request)
    return convert(fields, kind, from_form=request.content_type[0] in FORMS)
