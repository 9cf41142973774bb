"""Generate ``openapi/openapi.json`` from the app (``vlmgw openapi --write``); a test fails when it drifts."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.app import create_app
from gateway.settings import Settings

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def render_openapi() -> str:
    """The OpenAPI document of an app built with default settings, as stable, sorted JSON."""
    app = create_app(Settings(model="MODEL"), engines=[])
    schema = app.openapi_schema.to_schema()
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_openapi(path: Path = OPENAPI_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_openapi())
    return path
