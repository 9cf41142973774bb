"""Generate ``openapi/openapi.json`` from the app (``vlmgw openapi --write``); a test fails when it drifts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from gateway.app import create_app
from gateway.errors import ErrorResponse
from gateway.settings import Settings

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def render_openapi() -> str:
    """The OpenAPI document of an app built with default settings, as stable, sorted JSON."""
    app = create_app(Settings(model="MODEL"), engines=[])
    schema = published(app.openapi_schema.to_schema())
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


_ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
_ERRORS_TEXT = (
    "Any other error, in OpenAI's error shape: 401 (no or bad key), 404 (not found, or in another "
    "workspace), 409 (conflict), 410 (a stored file is gone), 413 (too large), 422, 429, 502/503/504 (the "
    "engine)."
)
# Responses that are not JSON: what each such operation's 200 carries.
_BINARY = {"type": "string", "format": "binary"}
_OTHER_CONTENT: dict[tuple[str, str], dict[str, Any]] = {
    ("/vlm/v2/image/{image_id}/file", "get"): {"image/*": {"schema": _BINARY}},
    ("/v1/chat/completions", "post"): {"text/event-stream": {"schema": {"type": "string"}}},
}


def published(schema: dict[str, Any]) -> dict[str, Any]:
    """The framework's document, completed with what the server really answers: every error is OpenAI's
    error shape (``ErrorResponse``, not the framework's default 400 body), binary and event-stream bodies."""
    _, components = msgspec.json.schema_components(
        [ErrorResponse], ref_template="#/components/schemas/{name}"
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    structs = _wire_structs()
    exact = [cls for name, cls in structs.items() if name in schemas]
    _, own = msgspec.json.schema_components(exact, ref_template="#/components/schemas/{name}")
    schemas.update(
        own
    )  # msgspec's own schemas keep every bound, also inside unions (the framework's lose some)
    for name, component in schemas.items():
        cls = structs.get(name)
        if (
            cls is not None
            and cls.__struct_config__.forbid_unknown_fields
            and component.get("type") == "object"
        ):
            component["additionalProperties"] = False  # msgspec refuses unknown fields of these bodies
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            body = {"application/json": {"schema": _ERROR}}
            responses["400"] = {
                "description": "Bad request: the message and `param` name it",
                "content": body,
            }
            responses["default"] = {"description": _ERRORS_TEXT, "content": body}
            extra = _OTHER_CONTENT.get((path, method))
            if extra is not None:
                ok = next(code for code in responses if code.startswith("2"))
                responses[ok].setdefault("content", {}).update(extra)
    _add_links(schema)
    return _any_of(schema)


# What a create operation's ``id`` is called where other operations take it: the last word of its path
# (``/vlm/v2/dataset`` -> ``dataset_id``), or the one named here.
_CREATES = {"generate": "prediction", "train": "job"}
# Request bodies that take an id another operation creates: (target path, body field) per resource.
_BODY_LINKS = {"dataset": [("/vlm/v2/variable", "dataset"), ("/vlm/v2/sample", "dataset")]}


def _add_links(schema: dict[str, Any]) -> None:
    """OpenAPI links from every create (a POST answering 201 with an ``id``) to the operations that take that
    id, in their path (``{dataset_id}``) or body (a variable's ``dataset``): clients (and the fuzzer's
    stateful phase) can follow them from a new object to everything that uses it."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for path, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        word = path.rstrip("/").rsplit("/", 1)[-1]
        resource = _CREATES.get(word, word)
        links: dict[str, Any] = {}
        for target, target_ops in paths.items():
            if f"{{{resource}_id}}" not in target:
                continue
            for method, operation in target_ops.items():
                if isinstance(operation, dict) and "operationId" in operation:
                    links[f"{method}{operation['operationId']}"] = {
                        "operationId": operation["operationId"],
                        "parameters": {f"{resource}_id": "$response.body#/id"},
                    }
        for target, field in _BODY_LINKS.get(resource, []):
            operation = paths.get(target, {}).get("post")
            if operation is not None:
                links[f"post{operation['operationId']}"] = {
                    "operationId": operation["operationId"],
                    "requestBody": {field: "$response.body#/id"},
                }
        if links:
            created["links"] = dict(sorted(links.items()))


def _wire_structs() -> dict[str, type[msgspec.Struct]]:
    """The gateway's wire types by class name (names that two types share are left out)."""
    found: dict[str, list[type[msgspec.Struct]]] = {}
    pending: list[type[msgspec.Struct]] = [msgspec.Struct]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("gateway."):
            found.setdefault(cls.__name__, []).append(cls)
    return {name: classes[0] for name, classes in found.items() if len(classes) == 1}


def _any_of(node: Any) -> Any:
    """``oneOf`` -> ``anyOf`` everywhere: msgspec's unions are not exclusive (a value may fit two members,
    ``null`` and an optional object, say), and the server takes the first that fits."""
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_any_of(v) for v in node]
    return node


def write_openapi(path: Path = OPENAPI_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_openapi())
    return path
