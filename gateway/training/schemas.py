"""Wire types of training jobs, their events and model versions (``/vlm/v2``).

Jobs and events follow OpenAI's fine-tuning shapes where they overlap (``object``, ``status`` values,
event ``level``/``type``/``data``), so the OpenAI users this product is for recognise them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from msgspec import Struct

from gateway.catalog.names import version_model_name
from gateway.db import models as db
from gateway.db.render import from_row


class TrainingJob(Struct):
    id: uuid.UUID
    object: str
    task: uuid.UUID | None  # None: a job of the OpenAI fine-tuning API (/v1/fine_tuning/jobs)
    status: str
    created: datetime
    started: datetime | None
    finished: datetime | None
    step: int
    total_steps: int | None
    progress: float
    loss: float | None
    eta_s: float | None
    train_samples: int
    test_samples: int
    hyperparameters: dict[str, Any]
    version: int | None
    model: str | None
    error: str | None


class TrainingJobPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[TrainingJob]


class TrainingEvent(Struct):
    id: int
    object: str
    created_at: datetime
    level: str
    type: str
    message: str
    data: dict[str, Any]


class TrainingEventPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[TrainingEvent]


class ModelVersion(Struct):
    id: uuid.UUID
    task: uuid.UUID
    version: int
    model: str
    production: bool
    base_model: str
    metrics: dict[str, Any]
    hyperparameters: dict[str, Any]
    train_samples: int
    test_samples: int
    job: uuid.UUID | None
    created: datetime


class ModelVersionPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[ModelVersion]


def job_out(row: db.TrainingJob) -> TrainingJob:
    progress = min(1.0, row.step / row.total_steps) if row.total_steps else 0.0
    if row.status == "succeeded":
        progress = 1.0
    return TrainingJob(
        id=row.id,
        object="training.job",
        task=row.task_id,
        status=row.status,
        created=row.created,
        started=row.started,
        finished=row.finished,
        step=row.step,
        total_steps=row.total_steps,
        progress=round(progress, 4),
        loss=row.loss,
        eta_s=row.eta_s,
        train_samples=row.train_samples,
        test_samples=row.test_samples,
        hyperparameters=row.hyperparameters or {},
        version=row.version,
        model=version_model_name(row.task_id, row.version) if row.version and row.task_id else None,
        error=row.error,
    )


def event_out(row: db.TrainingEvent) -> TrainingEvent:
    return from_row(
        TrainingEvent, row, object="training.job.event", created_at=row.created, data=row.data or {}
    )


def version_out(row: db.ModelVersion, production_version: int) -> ModelVersion:
    return from_row(
        ModelVersion,
        row,
        model=version_model_name(row.task_id, row.version),
        production=row.version == production_version,
        metrics=row.metrics or {},
        hyperparameters=row.hyperparameters or {},
    )
