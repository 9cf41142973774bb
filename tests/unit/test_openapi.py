"""openapi/openapi.json is generated from the app; this fails when the committed file drifts."""

from __future__ import annotations

import json

from gateway.openapi_doc import OPENAPI_PATH, render_openapi


def test_committed_openapi_matches_the_app() -> None:
    assert OPENAPI_PATH.exists(), "run `vlmgw openapi --write`"
    assert OPENAPI_PATH.read_text() == render_openapi(), "openapi.json drifted: run `vlmgw openapi --write`"


def test_openapi_documents_the_openai_routes() -> None:
    doc = json.loads(render_openapi())
    assert {"/v1/chat/completions", "/v1/models", "/health", "/metrics"} <= set(doc["paths"])
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body["$ref"].endswith("ChatCompletionRequest")


def _unbounded_integers(node: object, doc: dict[str, object], where: str, seen: set[str]) -> list[str]:
    """JSON paths of integer schemas without a ``maximum`` under ``node`` (following ``$ref``s once)."""
    if isinstance(node, list):
        return [p for i, item in enumerate(node) for p in _unbounded_integers(item, doc, where, seen)]
    if not isinstance(node, dict):
        return []
    if "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        if name in seen:
            return []
        components = doc["components"]["schemas"]  # type: ignore[index]
        return _unbounded_integers(components[name], doc, f"{where}->{name}", seen | {name})
    found = [where] if node.get("type") == "integer" and "maximum" not in node else []
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            found += [p for k, v in value.items() for p in _unbounded_integers(v, doc, f"{where}.{k}", seen)]
        elif key in ("anyOf", "oneOf") and any(v.get("type") == "number" for v in value):
            # `int | float` (a template variable's bounds and choices in a chat request): Python numbers of
            # any size that reach only the template compiler, never a database column or the engine
            found += _unbounded_integers([v for v in value if v.get("type") != "integer"], doc, where, seen)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            found += _unbounded_integers(value, doc, where, seen)
    return found


def test_every_integer_a_request_carries_is_bounded() -> None:
    """A huge number must be a 400 naming the field, never an overflow in the database or the engine."""
    doc = json.loads(render_openapi())
    unbounded = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                where = f"{method} {path} ?{parameter['name']}"
                unbounded += _unbounded_integers(parameter.get("schema", {}), doc, where, set())
            for content in operation.get("requestBody", {}).get("content", {}).values():
                unbounded += _unbounded_integers(content.get("schema", {}), doc, f"{method} {path}", set())
    assert unbounded == []


def test_errors_are_published_in_openais_shape_with_links_between_operations() -> None:
    doc = json.loads(render_openapi())
    for operations in doc["paths"].values():
        for operation in operations.values():
            for code in ("400", "default"):
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    links = doc["paths"]["/vlm/v2/dataset"]["post"]["responses"]["201"]["links"]
    assert any(link.get("parameters") == {"dataset_id": "$response.body#/id"} for link in links.values())
    assert doc["components"]["schemas"]["TaskCreate"]["additionalProperties"] is False
