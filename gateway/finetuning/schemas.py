"""Wire types of OpenAI's files and fine-tuning API (``/v1/files``, ``/v1/fine_tuning/jobs``), as the
``openai`` client reads them, and the ids they use (``file-<hex>``, ``ftjob-<hex>``, ``ftevent-<n>``,
``ftckpt-<hex>-<step>``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gateway.errors import NotFoundError

FILE_PREFIX = "file-"
JOB_PREFIX = "ftjob-"
EVENT_PREFIX = "ftevent-"
CHECKPOINT_PREFIX = "ftckpt-"
PURPOSES = ("fine-tune", "vision", "batch", "assistants", "user_data", "evals")


def file_id(row_id: uuid.UUID) -> str:
    return f"{FILE_PREFIX}{row_id.hex}"


def job_id(row_id: uuid.UUID) -> str:
    return f"{JOB_PREFIX}{row_id.hex}"


def parse_id(value: str, prefix: str, what: str) -> uuid.UUID:
    """The row id behind a wire id; an id of the wrong form is simply not found (404)."""
    try:
        if value.startswith(prefix):
            return uuid.UUID(hex=value[len(prefix) :])
    except ValueError:
        pass
    raise NotFoundError(f"No such {what}: `{value[:100]}`.", code=f"{what.replace(' ', '_')}_not_found")


class FileObject(msgspec.Struct):
    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    object: Literal["file"] = "file"
    status: str = "processed"
    status_details: str | None = None


class FileList(msgspec.Struct):
    data: list[FileObject]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"


class FileDeleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: Literal["file"] = "file"


Auto = Literal["auto"]
Epochs = Auto | Annotated[int, Meta(ge=1, le=50)]
BatchSize = Auto | Annotated[int, Meta(ge=1, le=256)]
LrMultiplier = Auto | Annotated[float, Meta(gt=0.0, le=10.0)]


class Hyperparameters(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """OpenAI's supervised hyper-parameters: each ``"auto"`` (the default for the model) or a value."""

    n_epochs: Epochs = "auto"
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LrMultiplier = "auto"


class Supervised(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    hyperparameters: Hyperparameters = msgspec.field(default_factory=Hyperparameters)


class Method(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    type: Literal["supervised"] = "supervised"
    supervised: Supervised | None = None


Suffix = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
FileRef = Annotated[str, Meta(min_length=1, max_length=100)]


class CreateJob(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``POST /v1/fine_tuning/jobs``. ``method.supervised.hyperparameters`` wins over ``hyperparameters``."""

    model: Annotated[str, Meta(min_length=1, max_length=300)]
    training_file: FileRef
    validation_file: FileRef | None = None
    suffix: Suffix | None = None
    seed: Annotated[int, Meta(ge=0, le=2**31 - 1)] | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    workspace: str | None = None

    def chosen_hyperparameters(self) -> Hyperparameters:
        if self.method is not None and self.method.supervised is not None:
            return self.method.supervised.hyperparameters
        return self.hyperparameters or Hyperparameters()


class JobError(msgspec.Struct):
    code: str
    message: str
    param: str | None = None


class ResolvedHyperparameters(msgspec.Struct):
    n_epochs: int | str
    batch_size: int | str
    learning_rate_multiplier: float | str


class MethodOut(msgspec.Struct):
    type: str
    supervised: dict[str, Any]


class FineTuningJob(msgspec.Struct):
    id: str
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: str
    hyperparameters: ResolvedHyperparameters
    training_file: str | None
    validation_file: str | None
    result_files: list[str]
    trained_tokens: int | None
    error: JobError | None
    seed: int
    estimated_finish: int | None
    user_provided_suffix: str | None
    method: MethodOut
    metadata: dict[str, str] | None
    integrations: list[dict[str, Any]] | None = None
    object: Literal["fine_tuning.job"] = "fine_tuning.job"


class JobList(msgspec.Struct):
    data: list[FineTuningJob]
    has_more: bool
    object: Literal["list"] = "list"


class JobEvent(msgspec.Struct):
    id: str
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any]
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"


class EventList(msgspec.Struct):
    data: list[JobEvent]
    has_more: bool
    object: Literal["list"] = "list"


class CheckpointMetrics(msgspec.Struct, omit_defaults=True):
    step: int
    train_loss: float | None = None
    valid_loss: float | None = None
    full_valid_loss: float | None = None


class Checkpoint(msgspec.Struct):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"


class CheckpointList(msgspec.Struct):
    data: list[Checkpoint]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"
