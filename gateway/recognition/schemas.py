"""Wire types of Ximilar's image recognition API (``/recognition/v2``): tasks, labels, training images,
training and ``/v2/classify``.

Request bodies come as multipart or url-encoded forms (Ximilar's ``curl -F`` examples) or as JSON; both are
read into the same Structs (``gateway.recognition.forms``). Field names are Ximilar's, including the
leading underscores of records (``_url``, ``_base64``, ``_status``, ``_width``, ``_height``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

TaskType = Literal["multi_class", "multi_label"]
MAX_RECORDS = 10


class LabelRef(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of add-label / remove-label: a label by id, or by its exact name."""

    label_id: uuid.UUID | None = None
    name: str | None = None
    workspace: str | None = None


class RecognitionTaskCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    description: str = ""
    type: TaskType = "multi_class"
    workspace: str | None = None


class RecognitionTaskUpdate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    description: str | None = None
    workspace: str | None = None


class LabelCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    description: str = ""
    type: Literal["category", "tag"] = "category"  # Ximilar's client sends it; kept for compatibility
    workspace: str | None = None


class LabelUpdate(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    description: str | None = None
    workspace: str | None = None


class LabelBrief(Struct):
    id: uuid.UUID
    name: str


class Label(Struct):
    id: uuid.UUID
    name: str
    description: str
    created: datetime
    workspace: uuid.UUID
    images_count: int
    tasks_count: int


class RecognitionTask(Struct):
    id: uuid.UUID
    name: str
    description: str
    type: str
    production_version: int
    last_train_status: str | None
    labels: list[LabelBrief]
    created: datetime
    workspace: uuid.UUID


class TrainingImage(Struct):
    id: uuid.UUID
    img_path: str
    thumb_img_path: str
    img_width: int
    img_height: int
    labels: list[LabelBrief]
    meta_data: dict[str, Any]
    created: datetime
    workspace: uuid.UUID
    image: uuid.UUID  # the stored image (/vlm/v2/image/{id}/)


class TrainingImageBatch(Struct):
    records: list[TrainingImage]


class RecognitionTaskPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[RecognitionTask]


class LabelPage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[Label]


class TrainingImagePage(Struct):
    count: int
    next: str | None
    previous: str | None
    results: list[TrainingImage]


class TrainBody(Struct, kw_only=True, forbid_unknown_fields=True):
    """Optional body of POST /recognition/v2/task/{id}/train/ (Ximilar's has none)."""

    hyperparameters: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: int = 0
    workspace: str | None = None


class ClassifyRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /recognition/v2/classify/. A record is ``{"_url": ...}`` or ``{"_base64": ...}``; its
    other fields (an id of the caller's) are echoed back, ``_base64`` is not."""

    task_id: uuid.UUID
    records: Annotated[list[dict[str, Any]], Meta(min_length=1)]
    version: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None
    descriptor: Annotated[int, Meta(ge=0, le=1)] | bool = 0
    workspace: str | None = None


class Status(Struct):
    code: int
    text: str


class LabelProb(Struct):
    prob: float
    name: str
    id: uuid.UUID


class ClassifyAnswer(Struct):
    task_id: uuid.UUID
    status: Status
    statistics: dict[str, float]
    descriptor: int
    version: int
    records: list[dict[str, Any]]


class RecordResult(Struct):
    """The classification of one record (merged with the record's own fields, ``_url`` echoed)."""

    status: Status = msgspec.field(name="_status")
    best_label: LabelProb
    labels: list[LabelProb]
    width: int = msgspec.field(name="_width")
    height: int = msgspec.field(name="_height")
