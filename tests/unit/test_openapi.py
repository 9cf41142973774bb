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
