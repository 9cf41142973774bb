"""OpenAPI request bodies of the recognition routes that read forms or JSON (``recognition.forms``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

_FORMATS = {"uuid": ("string", "uuid"), "string": ("string", None), "binary": ("string", "binary")}


def form_operation(summary: str, **properties: str) -> type[Operation]:
    """An ``Operation`` whose body is a form (multipart or url-encoded) or JSON with ``properties``
    (name -> "uuid" | "string" | "binary"; a file only in multipart)."""

    def schema(multipart: bool) -> Schema:
        props: dict[str, Any] = {}
        for name, kind in properties.items():
            if kind == "binary" and not multipart:
                continue
            _, fmt = _FORMATS[kind]
            props[name] = Schema(type=OpenAPIType.STRING, format=fmt)  # type: ignore[arg-type]
        return Schema(type=OpenAPIType.OBJECT, properties=props)

    @dataclass
    class FormOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=False,
                description=summary,
                content={
                    "multipart/form-data": OpenAPIMediaType(schema=schema(True)),
                    "application/x-www-form-urlencoded": OpenAPIMediaType(schema=schema(False)),
                    "application/json": OpenAPIMediaType(schema=schema(False)),
                },
            )

    return FormOperation
