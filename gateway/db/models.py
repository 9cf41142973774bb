"""Tortoise ORM models of the platform API (Ximilar's VLM entities).

Every row belongs to exactly one workspace (directly, or through its dataset/sample), and services filter
every query by workspace, so no key can see or touch another workspace's rows. Changing a model needs a
migration: ``uv run python -m gateway.db makemigrations`` writes the next file under
``gateway/db/migrations/``; gateways apply pending migrations on start (see ``gateway/db/connection.py``).

(Class comments are comments, not docstrings: Tortoise copies a docstring into SQL as the table comment
and 1.1.9 breaks on some punctuation there.)

Delete behaviour (documented in README "Platform API"): a row's own children go with it (a dataset's
variables, samples and their values; a sample's image links and values; a task's dataset links), and
deleting something another object refers to (a dataset attached to a task, an image used by a sample, a
variable that has values) is refused with 409. Database constraints back this up: owned links CASCADE,
references are NO ACTION (checked at statement end, so cascades within one delete pass).
"""

from __future__ import annotations

import uuid
from typing import Any

from tortoise import fields
from tortoise.models import Model

SAMPLE_TYPES = ("single", "multi_random", "multi_ordered")


# ``owner``: the user who created it; another user joins it only by an explicit grant (``vlmgw keys grant``).
# The built-in ``default`` workspace has no owner: it is the shared one of a single-user machine.
class Workspace(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    created = fields.DatetimeField(auto_now_add=True)
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="owned_workspaces", null=True, on_delete=fields.SET_NULL
    )
    owner_id: uuid.UUID | None

    class Meta:
        table = "workspace"


# Whoever owns API keys; may use several workspaces (``UserWorkspace``).
class User(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200, unique=True)
    is_admin = fields.BooleanField(default=False)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "app_user"


class UserWorkspace(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="memberships", on_delete=fields.CASCADE
    )
    user_id: uuid.UUID
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="memberships", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID

    class Meta:
        table = "user_workspace"
        unique_together = (("user", "workspace"),)


# An API key, stored as salted SHA-256; ``prefix`` (the key's first characters) finds the row.
class ApiKey(Model):
    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    user_id: uuid.UUID
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="api_keys", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    name = fields.CharField(max_length=200, default="")
    prefix = fields.CharField(max_length=32, db_index=True)
    salt = fields.CharField(max_length=64)
    digest = fields.CharField(max_length=64)
    created = fields.DatetimeField(auto_now_add=True)
    revoked = fields.DatetimeField(null=True)
    last_used = fields.DatetimeField(null=True)

    class Meta:
        table = "api_key"


# An uploaded image; its bytes live in the content-addressed store under ``sha256``.
class Image(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="images", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    sha256 = fields.CharField(max_length=64, db_index=True)
    width = fields.IntField()
    height = fields.IntField()
    format = fields.CharField(max_length=16)
    size_bytes = fields.IntField()
    file_name = fields.CharField(max_length=255, default="")
    meta_data: Any = fields.JSONField(default=dict)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "image"


class Dataset(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="datasets", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    version = fields.CharField(max_length=32)
    system_prompt = fields.TextField(default="")
    user_prompt = fields.TextField(default="")
    result_template = fields.TextField(default="")
    created = fields.DatetimeField(auto_now_add=True)
    updated = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "dataset"


class Task(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="tasks", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    system_prompt = fields.TextField(default="")
    user_prompt = fields.TextField(default="")
    max_tokens = fields.IntField(default=1000)
    base_model = fields.CharField(max_length=500, default="")
    production_version = fields.IntField(default=0)
    auto_deploy = fields.BooleanField(default=True)
    created = fields.DatetimeField(auto_now_add=True)
    updated = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "task"


# A dataset attached to a task (the task owns the link; the dataset is referenced).
class TaskDataset(Model):
    id = fields.IntField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="dataset_links", on_delete=fields.CASCADE
    )
    task_id: uuid.UUID
    dataset: fields.ForeignKeyRelation[Dataset] = fields.ForeignKeyField(
        "models.Dataset", related_name="task_links", on_delete=fields.NO_ACTION
    )
    dataset_id: uuid.UUID
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "task_dataset"
        unique_together = (("task", "dataset"),)


# A dataset variable's stored definition: one column per field of ``finetune.variables.VariableSpec``
# (``DEFINITION_FIELDS``), in Ximilar's form (``choices`` comma-separated, numbers as floats); read with
# ``definition_of``. tests/unit/test_variable_definition.py fails when a field has no column.
class Variable(Model):
    id = fields.UUIDField(primary_key=True)
    dataset: fields.ForeignKeyRelation[Dataset] = fields.ForeignKeyField(
        "models.Dataset", related_name="variables", on_delete=fields.CASCADE
    )
    dataset_id: uuid.UUID
    name = fields.CharField(max_length=100)
    type = fields.CharField(max_length=16)
    required = fields.BooleanField(default=False)
    description = fields.TextField(default="")
    choices = fields.TextField(null=True)
    min_value = fields.FloatField(null=True)
    max_value = fields.FloatField(null=True)
    step_size = fields.FloatField(null=True)
    min_length = fields.IntField(null=True)
    max_length = fields.IntField(null=True)
    default_value: Any = fields.JSONField(null=True)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "variable"
        unique_together = (("dataset", "name"),)


class Sample(Model):
    id = fields.UUIDField(primary_key=True)
    dataset: fields.ForeignKeyRelation[Dataset] = fields.ForeignKeyField(
        "models.Dataset", related_name="samples", on_delete=fields.CASCADE
    )
    dataset_id: uuid.UUID
    name = fields.CharField(max_length=200, default="")
    test = fields.BooleanField(default=False)
    type = fields.CharField(max_length=16, default="multi_random")
    input_meta_data: Any = fields.JSONField(default=dict)
    created = fields.DatetimeField(auto_now_add=True)
    updated = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "sample"


# An image of a sample at a position (0-based); the sample owns the link, the image is referenced.
class SampleImage(Model):
    id = fields.IntField(primary_key=True)
    sample: fields.ForeignKeyRelation[Sample] = fields.ForeignKeyField(
        "models.Sample", related_name="image_links", on_delete=fields.CASCADE
    )
    sample_id: uuid.UUID
    image: fields.ForeignKeyRelation[Image] = fields.ForeignKeyField(
        "models.Image", related_name="sample_links", on_delete=fields.NO_ACTION
    )
    image_id: uuid.UUID
    position = fields.IntField()

    class Meta:
        table = "sample_image"
        unique_together = (("sample", "image"),)


# A sample's annotated value of one of its dataset's variables (JSON).
class VariableValue(Model):
    id = fields.UUIDField(primary_key=True)
    sample: fields.ForeignKeyRelation[Sample] = fields.ForeignKeyField(
        "models.Sample", related_name="values", on_delete=fields.CASCADE
    )
    sample_id: uuid.UUID
    variable: fields.ForeignKeyRelation[Variable] = fields.ForeignKeyField(
        "models.Variable", related_name="values", on_delete=fields.NO_ACTION
    )
    variable_id: uuid.UUID
    value: Any = fields.JSONField()
    updated = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "variable_value"
        unique_together = (("sample", "variable"),)


# A training run of a task: ``python -m finetune`` in a child process; its progress and outcome. A run of
# the OpenAI fine-tuning API has no task: its ``FineTuningJob`` row says whose it is.
class TrainingJob(Model):
    id = fields.UUIDField(primary_key=True)
    task: fields.ForeignKeyNullableRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="training_jobs", on_delete=fields.CASCADE, null=True
    )
    task_id: uuid.UUID | None
    status = fields.CharField(max_length=16, default="queued", db_index=True)
    error = fields.TextField(null=True)
    step = fields.IntField(default=0)
    total_steps = fields.IntField(null=True)
    loss = fields.FloatField(null=True)
    eta_s = fields.FloatField(null=True)
    train_samples = fields.IntField(default=0)
    test_samples = fields.IntField(default=0)
    hyperparameters: Any = fields.JSONField(default=dict)
    version = fields.IntField(null=True)
    created = fields.DatetimeField(auto_now_add=True)
    started = fields.DatetimeField(null=True)
    finished = fields.DatetimeField(null=True)

    class Meta:
        table = "training_job"


# One progress line of a training job, in OpenAI's fine-tuning event shape.
class TrainingEvent(Model):
    id = fields.IntField(primary_key=True)
    job: fields.ForeignKeyRelation[TrainingJob] = fields.ForeignKeyField(
        "models.TrainingJob", related_name="events", on_delete=fields.CASCADE
    )
    job_id: uuid.UUID
    created = fields.DatetimeField(auto_now_add=True)
    level = fields.CharField(max_length=8, default="info")
    type = fields.CharField(max_length=16, default="message")
    message = fields.TextField(default="")
    data: Any = fields.JSONField(default=dict)

    class Meta:
        table = "training_event"


# A trained version of a task's model: where its adapter is, its metrics and how it was trained.
class ModelVersion(Model):
    id = fields.UUIDField(primary_key=True)
    task: fields.ForeignKeyRelation[Task] = fields.ForeignKeyField(
        "models.Task", related_name="versions", on_delete=fields.CASCADE
    )
    task_id: uuid.UUID
    version = fields.IntField()
    base_model = fields.CharField(max_length=500)
    adapter_dir = fields.TextField()
    metrics: Any = fields.JSONField(default=dict)
    hyperparameters: Any = fields.JSONField(default=dict)
    train_samples = fields.IntField(default=0)
    test_samples = fields.IntField(default=0)
    job: fields.ForeignKeyNullableRelation[TrainingJob] = fields.ForeignKeyField(
        "models.TrainingJob", related_name="model_versions", null=True, on_delete=fields.SET_NULL
    )
    job_id: uuid.UUID | None
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "model_version"
        unique_together = (("task", "version"),)


# ---- Job leases (gateway/jobs): which gateway owns which background job -------------------------------


# A background job's lease: owner and expiry (database clock, epoch seconds), renewed by heartbeat and
# taken over once expired. ``group_key`` is set while the job is active and unique per kind, so the
# database holds rules such as one active training job per task (NULLs never collide).
class JobLease(Model):
    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    job_id = fields.CharField(max_length=64)
    group_key = fields.CharField(max_length=200, null=True)
    active = fields.BooleanField(default=True, db_index=True)
    owner = fields.CharField(max_length=200, null=True)
    expires = fields.FloatField(null=True)
    attempts = fields.IntField(default=0)
    cancel = fields.BooleanField(default=False)
    handle = fields.CharField(max_length=200, null=True)
    cursor = fields.IntField(default=0)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "job_lease"
        unique_together = (("kind", "job_id"), ("kind", "group_key"))


# ---------------------------------------------------------------- predictions (vlm.run's API, issue 16)


# A prediction of ``/v1/image/generate`` or ``/v1/video/generate``: the checked request, its status and its
# answer. Batch rows are claimed by one gateway at a time (``owner`` + ``lease_until``, set by a conditional
# UPDATE in gateway.predictions.claims); the same pair guards the delivery of the callback afterwards.
class Prediction(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="predictions", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    kind = fields.CharField(max_length=8)
    domain = fields.CharField(max_length=100)
    model = fields.CharField(max_length=500)
    batch = fields.BooleanField(default=False)
    status = fields.CharField(max_length=16, default="pending", db_index=True)
    plan: Any = fields.JSONField(default=dict)
    media_count = fields.IntField(default=0)
    response: Any = fields.JSONField(null=True)
    confidence: Any = fields.JSONField(null=True)
    usage: Any = fields.JSONField(default=dict)
    error: Any = fields.JSONField(null=True)
    training: Any = fields.JSONField(null=True)
    request_id = fields.CharField(max_length=200, default="")
    request_created_at = fields.DatetimeField(null=True)
    environment = fields.CharField(max_length=16, default="dev")
    session_id = fields.CharField(max_length=200, null=True)
    owner = fields.CharField(max_length=100, null=True)
    lease_until = fields.DatetimeField(null=True)
    run_after = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    callback_url = fields.TextField(null=True)
    callback_status = fields.CharField(max_length=16, null=True, db_index=True)
    callback_attempts = fields.IntField(default=0)
    callback_next_at = fields.DatetimeField(null=True)
    callback_error = fields.TextField(null=True)
    created = fields.DatetimeField(auto_now_add=True)
    started = fields.DatetimeField(null=True)
    completed = fields.DatetimeField(null=True)

    class Meta:
        table = "prediction"


# The secret a workspace's prediction callbacks are signed with (HMAC-SHA256); rotated through the API.
class WebhookSecret(Model):
    id = fields.IntField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="webhook_secrets", on_delete=fields.CASCADE, unique=True
    )
    workspace_id: uuid.UUID
    secret = fields.CharField(max_length=128)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_secret"


# ---- Exports (gateway/exports) ---------------------------------------------------------------------------
# An export of a trained model version: a child process converts it, the archive lands in the model store
# under ``exports/<id>/``; ``expires`` is when the archive is deleted; ``heartbeat`` is renewed by the
# gateway running the job (a job whose heartbeat stops was interrupted). ``events`` are its progress lines.
class ExportJob(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="exports", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    # What is exported: a platform task version, or a model of the fine-tuning API (exactly one is set;
    # ``model`` is its public name, for a fine-tuned model the final model's or one checkpoint's).
    version: fields.ForeignKeyNullableRelation[ModelVersion] = fields.ForeignKeyField(
        "models.ModelVersion", related_name="exports", on_delete=fields.CASCADE, null=True
    )
    version_id: uuid.UUID | None
    fine_tuning_job: fields.ForeignKeyNullableRelation[FineTuningJob] = fields.ForeignKeyField(
        "models.FineTuningJob", related_name="exports", on_delete=fields.CASCADE, null=True
    )
    fine_tuning_job_id: uuid.UUID | None
    model = fields.CharField(max_length=300)
    format = fields.CharField(max_length=16)
    gguf_type = fields.CharField(max_length=8, default="")
    status = fields.CharField(max_length=16, default="queued", db_index=True)
    stage = fields.CharField(max_length=64, default="")
    progress = fields.FloatField(default=0.0)
    error = fields.TextField(null=True)
    events: Any = fields.JSONField(default=list)
    file_name = fields.CharField(max_length=300, default="")
    size_bytes = fields.BigIntField(null=True)
    sha256 = fields.CharField(max_length=64, default="")
    created = fields.DatetimeField(auto_now_add=True)
    started = fields.DatetimeField(null=True)
    finished = fields.DatetimeField(null=True)
    expires = fields.DatetimeField(null=True)
    heartbeat = fields.DatetimeField(null=True)

    class Meta:
        table = "export_job"


# ---- Image recognition (gateway/recognition, Ximilar's /recognition/v2) -----------------------------------
# A recognition task is a platform task (the same id: its jobs, events and versions are the VLM training
# ones) with a type and a set of labels. Labels and training images live in the workspace on their own and
# are connected to tasks and to each other; a training image is a stored ``Image``.
class RecognitionTask(Model):
    id = fields.UUIDField(primary_key=True)
    task: fields.OneToOneRelation[Task] = fields.OneToOneField(
        "models.Task", related_name="recognition", on_delete=fields.CASCADE
    )
    task_id: uuid.UUID
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="recognition_tasks", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    type = fields.CharField(max_length=16, default="multi_class")
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "recognition_task"


class RecognitionLabel(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="recognition_labels", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "recognition_label"


class RecognitionTaskLabel(Model):
    id = fields.IntField(primary_key=True)
    task: fields.ForeignKeyRelation[RecognitionTask] = fields.ForeignKeyField(
        "models.RecognitionTask", related_name="label_links", on_delete=fields.CASCADE
    )
    task_id: uuid.UUID
    label: fields.ForeignKeyRelation[RecognitionLabel] = fields.ForeignKeyField(
        "models.RecognitionLabel", related_name="task_links", on_delete=fields.CASCADE
    )
    label_id: uuid.UUID
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "recognition_task_label"
        unique_together = (("task", "label"),)


class TrainingImage(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="training_images", on_delete=fields.NO_ACTION
    )
    workspace_id: uuid.UUID
    image: fields.ForeignKeyRelation[Image] = fields.ForeignKeyField(
        "models.Image", related_name="training_images", on_delete=fields.NO_ACTION
    )
    image_id: uuid.UUID
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "training_image"


class TrainingImageLabel(Model):
    id = fields.IntField(primary_key=True)
    image: fields.ForeignKeyRelation[TrainingImage] = fields.ForeignKeyField(
        "models.TrainingImage", related_name="label_links", on_delete=fields.CASCADE
    )
    image_id: uuid.UUID
    label: fields.ForeignKeyRelation[RecognitionLabel] = fields.ForeignKeyField(
        "models.RecognitionLabel", related_name="image_links", on_delete=fields.CASCADE
    )
    label_id: uuid.UUID

    class Meta:
        table = "training_image_label"
        unique_together = (("image", "label"),)


# ---- OpenAI files and fine-tuning (gateway/finetuning) -------------------------------------------------


# A file uploaded through /v1/files; its bytes are in the model store under ``files/<workspace>/<id>``.
class OpenAIFile(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="openai_files", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    filename = fields.CharField(max_length=255)
    purpose = fields.CharField(max_length=32, db_index=True)
    bytes = fields.BigIntField()
    lines = fields.IntField(default=0)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "openai_file"


# A job of the OpenAI fine-tuning API: what was asked for, and what it made. Status, progress and events
# are its training job's (the same job system as /vlm/v2 training).
class FineTuningJob(Model):
    id = fields.UUIDField(primary_key=True)
    workspace: fields.ForeignKeyRelation[Workspace] = fields.ForeignKeyField(
        "models.Workspace", related_name="fine_tuning_jobs", on_delete=fields.CASCADE
    )
    workspace_id: uuid.UUID
    training_job: fields.OneToOneRelation[TrainingJob] = fields.OneToOneField(
        "models.TrainingJob", related_name="fine_tuning", on_delete=fields.CASCADE
    )
    training_job_id: uuid.UUID
    model = fields.CharField(max_length=500)
    training_file = fields.CharField(max_length=64)
    validation_file = fields.CharField(max_length=64, null=True)
    suffix = fields.CharField(max_length=64, null=True)
    seed = fields.IntField(default=0)
    hyperparameters: Any = fields.JSONField(default=dict)  # OpenAI's: n_epochs, batch_size, lr multiplier
    fine_tuned_model = fields.CharField(max_length=300, null=True, db_index=True)
    trained_tokens = fields.BigIntField(null=True)
    checkpoints: Any = fields.JSONField(default=list)  # [{"step", "name", "key", "metrics", "created"}]
    deleted_models: Any = fields.JSONField(default=list)  # names deleted with DELETE /v1/models/{model}
    error: Any = fields.JSONField(null=True)  # {"code", "message", "param"}
    metadata: Any = fields.JSONField(null=True)
    created = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "fine_tuning_job"
