"""The OpenAPI document covers every platform route of the seed, with examples and the upload body."""

from __future__ import annotations

import json

from gateway.openapi_doc import render_openapi
from tests.platform.test_seed_requests import SEED_REQUESTS


def test_every_seed_route_is_documented_with_its_method() -> None:
    doc = json.loads(render_openapi())
    paths = doc["paths"]
    for request in SEED_REQUESTS:
        path = request.url.split("api.ximilar.com", 1)[1].split("?", 1)[0]
        for name in ("TASK", "DATASET", "VARIABLE", "SAMPLE"):
            path = path.replace(f"__{name}_ID__", "{" + name.lower() + "_id}")
        path = path.rstrip("/")  # Litestar documents routes without the trailing slash it also accepts
        assert path in paths, path
        assert request.method.lower() in paths[path], (request.method, path)


def test_examples_and_the_upload_body() -> None:
    doc = json.loads(render_openapi())
    get_task = doc["paths"]["/vlm/v2/task/{task_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]
    assert get_task["examples"]
    upload = doc["paths"]["/vlm/v2/image"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(upload)
    assert "_base64" in upload["application/json"]["schema"]["properties"]
