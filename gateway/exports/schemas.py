"""Wire types of model exports (``/vlm/v2``): the request, the export job with its events and links."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

from gateway.db import models as db
from gateway.db.render import from_row
from gateway.finetuning.schemas import job_id

Format = Literal["adapter", "merged", "gguf", "pt"]
GgufType = Literal["f16", "f32"]
EXPORT_STATUSES = ("queued", "running", "succeeded", "failed", "expired")


class ExportRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /vlm/v2/model/{id}/export/."""

    format: Format
    gguf_type: GgufType | None = None  # gguf only: f16 (default) or f32 weights
    workspace: str | None = None


class NamedExportRequest(ExportRequest, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /vlm/v2/exports/: the model by the name clients use, ``task-<task id>-v<N>``,
    ``task-<task id>`` (the production version) or a fine-tuned model of the fine-tuning API,
    ``ft:<base>:<suffix>:<job>`` or one of its checkpoints (``...:ckpt-step-<N>``)."""

    model: Annotated[str, Meta(min_length=1, max_length=300)]


class ExportEvent(Struct):
    created_at: str
    level: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class Export(Struct):
    id: uuid.UUID
    object: str
    model: str
    model_id: uuid.UUID | None  # the model version exported (None for a fine-tuning API model)
    fine_tuning_job: str | None  # ``ftjob-...``: the fine-tuning job whose model (or checkpoint) is exported
    format: str
    gguf_type: str | None
    status: str
    stage: str
    progress: float
    error: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    expires: datetime | None
    file_name: str | None
    size_bytes: int | None
    sha256: str | None
    download_url: str | None
    checksum_url: str | None
    events: list[ExportEvent]


class ExportPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[Export]


def export_out(row: db.ExportJob, base_url: str) -> Export:
    """The export as clients see it; links are absolute and present once the archive can be downloaded."""
    ready = row.status == "succeeded"
    link = f"{base_url.rstrip('/')}/vlm/v2/export/{row.id}/"
    return from_row(
        Export,
        row,
        object="model.export",
        model_id=row.version_id,
        fine_tuning_job=job_id(row.fine_tuning_job_id) if row.fine_tuning_job_id else None,
        gguf_type=row.gguf_type or None,
        progress=1.0 if ready else round(row.progress, 4),
        file_name=row.file_name or None,
        sha256=row.sha256 or None,
        download_url=link + "download/" if ready else None,
        checksum_url=link + "checksum/" if ready else None,
        events=[ExportEvent(**event) for event in row.events or []],
    )
