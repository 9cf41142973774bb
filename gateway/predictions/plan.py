"""A prediction's plan: everything needed to ask the model, fixed when the request arrives.

The plan is stored with a batch prediction, so a job runs later exactly as it was asked for (the domain's
prompt and schema of that moment, the grounding rewrite, the sampling settings). ``chat_request`` turns a
plan and the checked media into the chat request the gateway's chat service answers with structured
output: ``response_format`` json_schema with the plan's schema, ``max_retries`` and ``confidence``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from finetune.schema_regex import SchemaError, check_schema
from gateway.errors import BadRequestError
from gateway.openai_api.protocol import (
    ChatCompletionRequest,
    ContentPart,
    ImageUrl,
    ImageUrlPart,
    JsonSchemaFormat,
    JsonSchemaSpec,
    TextPart,
    UserMessage,
    VideoUrl,
    VideoUrlPart,
)
from gateway.predictions import grounding
from gateway.predictions.domains import Domain
from gateway.predictions.intake import MediaItem
from gateway.predictions.schemas import GenerationConfig

DETAIL: dict[str, Literal["auto", "low", "high"]] = {
    "auto": "auto", "lo": "low", "low": "low", "hi": "high", "high": "high",
}  # fmt: skip


class TrainingTarget(msgspec.Struct):
    """Where the machine-learning loop stores the prediction (gateway.predictions.training_loop)."""

    dataset: str
    param: str
    session_id: str | None
    environment: str


class Plan(msgspec.Struct, kw_only=True):
    kind: Literal["image", "video"]
    domain: str
    prompt: str
    schema: dict[str, Any]
    detail: Literal["auto", "low", "high"] = "auto"
    max_tokens: int
    temperature: float
    max_retries: int
    confidence: bool = False
    grounding: bool = False
    mimes: list[str] = msgspec.field(default_factory=list)
    training: TrainingTarget | None = None


def answer_schema(domain: Domain, config: GenerationConfig) -> tuple[dict[str, Any], bool]:
    """The schema the answer must fit before grounding, and whether it is the caller's own.

    ``json_schema`` (or a ``response_model`` that is a JSON object) replaces the domain's schema; the empty
    object ``{}`` that vlm.run's examples send means "none given".
    """
    if config.gql_stmt:
        raise BadRequestError(
            "`gql_stmt` (GraphQL field selection) is not supported; give `json_schema` instead",
            param="config.gql_stmt",
        )
    given = [
        (name, value)
        for name, value in (("json_schema", config.json_schema), ("response_model", config.response_model))
        if isinstance(value, dict) and value
    ]
    if len(given) > 1:
        raise BadRequestError("give `json_schema` or `response_model`, not both", param="config.json_schema")
    if not given:
        return domain.schema, False
    name, schema = given[0]
    try:
        check_schema(schema)
    except SchemaError as exc:
        raise BadRequestError(
            f"Invalid JSON Schema in `config.{name}`: {exc}", param=f"config.{name}"
        ) from None
    return schema, True


def build_plan(domain: Domain, config: GenerationConfig, pages: int) -> Plan:
    """The plan for ``domain`` under ``config`` for an input of ``pages`` images (or frames)."""
    schema, own = answer_schema(domain, config)
    prompt = config.prompt.strip() if config.prompt and config.prompt.strip() else domain.prompt
    if own:
        prompt += " Answer in JSON that fits this JSON Schema: " + json.dumps(schema, separators=(",", ":"))
    if config.grounding:
        schema = grounding.grounded_schema(schema, pages)
        prompt += grounding.PROMPT
    else:
        schema = grounding.without_markers(schema)
    return Plan(
        kind=domain.media, domain=domain.name, prompt=prompt, schema=schema, detail=DETAIL[config.detail],
        max_tokens=config.max_tokens, temperature=config.temperature, max_retries=config.max_retries,
        confidence=config.confidence, grounding=config.grounding,
    )  # fmt: skip


def chat_request(plan: Plan, media: list[MediaItem], model: str, max_tokens: int) -> ChatCompletionRequest:
    """The chat completion that answers ``plan`` about ``media`` with ``model``."""
    parts: list[ContentPart] = []
    for item in media:
        if plan.kind == "video":
            parts.append(VideoUrlPart(VideoUrl(url=item.data_uri())))
        else:
            parts.append(ImageUrlPart(ImageUrl(url=item.data_uri(), detail=plan.detail)))
    parts.append(TextPart(plan.prompt))
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in plan.domain)[:64]
    return ChatCompletionRequest(
        model=model,
        messages=[UserMessage(content=parts)],
        max_tokens=max_tokens,
        temperature=plan.temperature,
        response_format=JsonSchemaFormat(JsonSchemaSpec(name=name, schema=plan.schema, strict=True)),
        max_retries=plan.max_retries or None,
        confidence=(plan.confidence or plan.grounding) or None,
    )
