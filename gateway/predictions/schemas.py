"""Wire types of vlm.run's predictions API (msgspec), as its API page and Python SDK send and read them.

Requests are decoded strictly (an unknown field is a 400 naming it). Fields the SDK always sends are
accepted even when the gateway has no use for them: ``config.response_model`` (the SDK turns a Pydantic
class into ``json_schema`` before sending; a JSON object here is taken as the schema) and ``gql_stmt``
(refused when set, since the gateway does not run GraphQL selections).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

Status = Literal["enqueued", "pending", "running", "completed", "failed", "paused"]
Detail = Literal["auto", "lo", "hi", "low", "high"]
Text200 = Annotated[str, Meta(min_length=1, max_length=200)]


class GenerationConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``config``: how to generate. ``json_schema`` replaces the domain's schema; ``prompt`` its prompt."""

    prompt: str | None = None
    detail: Detail = "auto"
    response_model: Any = None
    json_schema: dict[str, Any] | None = None
    gql_stmt: str | None = None
    max_retries: Annotated[int, Meta(ge=0, le=5)] = 3
    max_tokens: Annotated[int, Meta(ge=1, le=1_000_000)] = 4096
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.0
    confidence: bool = False
    grounding: bool = False


class RequestMetadata(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """``metadata``. With ``allow_training`` and a ``session_id`` (or ``dataset``, a dataset name: a gateway
    extension) the images and the answer are stored as a sample of that dataset in the caller's workspace."""

    environment: Literal["dev", "staging", "prod"] = "dev"
    session_id: Text200 | None = None
    allow_training: bool = True
    dataset: Text200 | None = None


class _Common(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    domain: Annotated[str, Meta(min_length=1, max_length=100)]
    config: GenerationConfig = msgspec.field(default_factory=GenerationConfig)
    metadata: RequestMetadata = msgspec.field(default_factory=RequestMetadata)
    id: Annotated[str, Meta(max_length=200)] | None = None
    created_at: datetime | None = None
    callback_url: Annotated[str, Meta(min_length=1, max_length=2048)] | None = None
    model: Annotated[str, Meta(min_length=1)] = "vlm-1"
    batch: bool = False


class ImageGenerateRequest(_Common, kw_only=True):
    """``POST /v1/image/generate``: ``images`` are base64 (raw or ``data:`` URIs) or http(s) URLs."""

    images: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]


class VideoGenerateRequest(_Common, kw_only=True):
    """``POST /v1/video/generate``: the video as an http(s) URL or a ``data:`` URI in ``url``."""

    url: Annotated[str, Meta(min_length=1)] | None = None
    file_id: str | None = None


class CreditUsage(msgspec.Struct, omit_defaults=True):
    """vlm.run's usage block; a self-hosted gateway bills nothing (``credits_used`` 0) and adds tokens."""

    elements_processed: int | None
    element_type: Literal["image", "video"] | None
    credits_used: int | None
    prompt_tokens: int | UnsetType = UNSET
    completion_tokens: int | UnsetType = UNSET


class PredictionError(msgspec.Struct):
    message: str
    code: str | None = None


class CallbackState(msgspec.Struct):
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None = None


class TrainingSample(msgspec.Struct, omit_defaults=True):
    """Where the machine-learning loop stored the prediction (or why it could not)."""

    dataset: str | None = None
    sample: str | None = None
    error: str | None = None


class PredictionResponse(msgspec.Struct, omit_defaults=True):
    """A prediction as vlm.run returns it (201 from generate, 200 from ``GET /v1/predictions/{id}``); the
    optional blocks appear only when they apply."""

    id: str
    created_at: datetime
    completed_at: datetime | None
    response: Any
    status: Status
    usage: CreditUsage
    domain: str | None
    confidence: dict[str, float] | UnsetType = UNSET
    error: PredictionError | UnsetType = UNSET
    callback: CallbackState | UnsetType = UNSET
    training: TrainingSample | UnsetType = UNSET


class DomainInfo(msgspec.Struct):
    domain: str
    description: str
    media: Literal["image", "video"]


class SchemaRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/schema`` (the SDK's ``get_schema``): the answer schema of a domain under a config."""

    domain: Annotated[str, Meta(min_length=1, max_length=100)]
    config: GenerationConfig = msgspec.field(default_factory=GenerationConfig)


class SchemaResponse(msgspec.Struct):
    domain: str
    description: str
    schema_version: str
    schema_hash: str
    gql_stmt: str
    json_schema: dict[str, Any]


class WebhookSecretOut(msgspec.Struct):
    """The workspace's callback signing secret: ``X-VLMRun-Signature: sha256=<HMAC-SHA256(secret, body)>``."""

    secret: str
    created_at: datetime
    header: str = "X-VLMRun-Signature"
    algorithm: str = "sha256"
