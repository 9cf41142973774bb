"""HTTP routes of model exports: start one for a trained model (a version by id, or any trained model by
name, ``ft:...`` models of the fine-tuning API included), list them, follow one, download its archive.
One service call each; the service holds the queries and the files."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter
from litestar.response import File

from gateway.auth import require_api_key
from gateway.dependencies import BaseUrl, Page, Ws
from gateway.exports import schemas as wire
from gateway.exports.service import ExportService
from gateway.platform_api.crud import to_page

Exports = NamedDependency[ExportService]
ModelId = FromPath[uuid.UUID]
ExportId = FromPath[uuid.UUID]
ModelQ = Annotated[
    str | None,
    Parameter(description="only exports of this model: `ft:...`, `task-<task id>-v<N>` or `task-<task id>`",
              max_length=300),
]  # fmt: skip


class ExportController(Controller):
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["Exports"]  # noqa: RUF012

    @post(
        "/vlm/v2/model/{model_id:uuid}/export/",
        status_code=201,
        summary="Export a trained model version: adapter, merged safetensors, GGUF for llama.cpp, or .pt",
    )
    async def start(
        self,
        model_id: ModelId,
        data: JSONBody[wire.ExportRequest],
        export_service: Exports,
        ws: Ws,
        base_url: BaseUrl,
    ) -> wire.Export:
        return wire.export_out(await export_service.start(ws, model_id, data), base_url)

    @post(
        "/vlm/v2/exports/",
        status_code=201,
        summary="Export a trained model by name: `ft:...` (fine-tuning API), `task-<id>-vN`, `task-<id>`",
    )
    async def start_named(
        self, data: JSONBody[wire.NamedExportRequest], export_service: Exports, ws: Ws, base_url: BaseUrl
    ) -> wire.Export:
        return wire.export_out(await export_service.start_named(ws, data), base_url)

    @get("/vlm/v2/exports/", summary="List the workspace's exports, newest first (`model`: one model's only)")
    async def list_workspace_exports(
        self, export_service: Exports, ws: Ws, paging: Page, base_url: BaseUrl, model: ModelQ = None
    ) -> wire.ExportPage:
        page = await export_service.workspace_page(ws, model, paging, base_url)
        return to_page(wire.ExportPage, page)

    @get("/vlm/v2/model/{model_id:uuid}/exports/", summary="List a model version's exports, newest first")
    async def list_exports(
        self, model_id: ModelId, export_service: Exports, ws: Ws, paging: Page, base_url: BaseUrl
    ) -> wire.ExportPage:
        page = await export_service.exports_page(ws, model_id, paging, base_url)
        return to_page(wire.ExportPage, page)

    @get("/vlm/v2/export/{export_id:uuid}/", summary="An export: status, progress, events, download link")
    async def get_export(
        self, export_id: ExportId, export_service: Exports, ws: Ws, base_url: BaseUrl
    ) -> wire.Export:
        return wire.export_out(await export_service.get(ws, export_id), base_url)

    @delete(
        "/vlm/v2/export/{export_id:uuid}/", status_code=204, summary="Delete an export (stops it if running)"
    )
    async def delete_export(self, export_id: ExportId, export_service: Exports, ws: Ws) -> None:
        await export_service.delete(ws, export_id)

    @get(
        "/vlm/v2/export/{export_id:uuid}/download/",
        summary="Download the export's archive (tar); its SHA-256 is in X-Checksum-SHA256 and Repr-Digest",
        media_type="application/x-tar",
    )
    async def download(self, export_id: ExportId, export_service: Exports, ws: Ws) -> File:
        row, path = await export_service.archive(ws, export_id)
        digest = base64.b64encode(bytes.fromhex(row.sha256)).decode()
        headers = {"X-Checksum-SHA256": row.sha256, "Repr-Digest": f"sha-256=:{digest}:"}
        return File(path=path, filename=row.file_name, media_type="application/x-tar", headers=headers)

    @get(
        "/vlm/v2/export/{export_id:uuid}/checksum/",
        summary="The archive's SHA-256 in `sha256sum` format (`sha256sum -c` checks a download with it)",
        media_type="text/plain",
    )
    async def checksum(self, export_id: ExportId, export_service: Exports, ws: Ws) -> str:
        row, _path = await export_service.archive(ws, export_id)
        return f"{row.sha256}  {row.file_name}\n"
