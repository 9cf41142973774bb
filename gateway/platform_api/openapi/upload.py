"""The image upload's request body in OpenAPI: the handler reads multipart or JSON itself."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Reference, RequestBody, Schema

_RECORD: dict[str, Schema | Reference] = {
    "_base64": Schema(type=OpenAPIType.STRING, description="the image, base64 or a data: URI"),
    "_url": Schema(type=OpenAPIType.STRING, description="an http(s) URL the gateway fetches (SSRF-guarded)"),
    "file_name": Schema(type=OpenAPIType.STRING),
    "meta_data": Schema(type=OpenAPIType.OBJECT),
}


PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"


@dataclass
class UploadOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="multipart/form-data files (any field name; `workspace` a form field), or JSON.",
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            "file": Schema(type=OpenAPIType.STRING, format="binary"),  # type: ignore[arg-type]
                            "workspace": Schema(type=OpenAPIType.STRING, format="uuid"),  # type: ignore[arg-type]
                        },
                    )
                ),
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            **_RECORD,
                            "records": Schema(
                                type=OpenAPIType.ARRAY,
                                items=Schema(type=OpenAPIType.OBJECT, properties=_RECORD),
                            ),
                            "workspace": Schema(type=OpenAPIType.STRING, format="uuid"),  # type: ignore[arg-type]
                        },
                    ),
                    example={"_base64": PIXEL_PNG},
                ),
            },
        )
