"""Run a plan: resolve the model, ask the chat service, turn its answer into a prediction's result.

``vlm-1`` (vlm.run's model name) means the gateway's default base model: the first base model the engines
serve. Any other name goes to the chat service unchanged (base models, adapters, ``task-<id>`` models).
An answer cut off by ``max_tokens`` is not valid JSON and fails the prediction with a 422 that says to
raise ``config.max_tokens``; every other answer has already been checked against the schema by the chat
service's structured output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from gateway.errors import (
    EngineUnavailableError,
    InvalidStructuredOutputError,
    ModelNotFoundError,
    UnprocessableError,
)
from gateway.media.errors import MediaError
from gateway.openai_api.protocol import ChatCompletion, ChatCompletionRequest, ModelList
from gateway.predictions import grounding
from gateway.predictions.intake import MediaItem
from gateway.predictions.plan import Plan, chat_request

DEFAULT_MODEL = "vlm-1"
_CHAT_PART = re.compile(r"^messages\[0\]\.content\[(\d+)\]\.(?:image_url|video_url)\.url$")


class Chat(Protocol):
    async def complete(self, req: ChatCompletionRequest, workspace: str | None = None) -> ChatCompletion: ...


ModelLister = Callable[[str | None], Awaitable[ModelList]]


@dataclass(frozen=True)
class Outcome:
    response: Any
    confidence: dict[str, float] | None
    prompt_tokens: int
    completion_tokens: int


class PredictionExecutor:
    """Answers plans with the gateway's chat service (structured output, retries, confidence)."""

    def __init__(self, chat: Chat, list_models: ModelLister) -> None:
        self.chat = chat
        self.list_models = list_models

    async def model_for(self, name: str, workspace: str) -> str:
        """The served model a request's ``model`` names (``vlm-1``: the default base model)."""
        if name != DEFAULT_MODEL:
            return name
        models = await self.list_models(workspace)
        base = next((m.id for m in models.data if m.parent is None), None)
        if base is None:
            raise EngineUnavailableError("no base model is served yet (the engine is starting)")
        return base

    async def check_model(self, name: str, workspace: str) -> None:
        """404 ``model_not_found`` for a model this workspace cannot use (checked before a job is stored)."""
        served = await self.model_for(name, workspace)
        if served not in {m.id for m in (await self.list_models(workspace)).data}:
            raise ModelNotFoundError(name)

    async def context_length(self, served: str, workspace: str) -> int | None:
        """The model's context length (an adapter's is its base model's), when the engine said it."""
        cards = {m.id: m for m in (await self.list_models(workspace)).data}
        card = cards.get(served)
        if card is not None and card.max_model_len is None and card.parent is not None:
            card = cards.get(card.parent)
        return card.max_model_len if card is not None else None

    async def run(self, plan: Plan, media: list[MediaItem], model: str, workspace: str) -> Outcome:
        """Ask ``model`` about ``media``. ``max_tokens`` above the model's context length (vlm.run's SDK
        sends 65535) is capped at it, which vLLM would otherwise refuse; the engine then stops at whatever
        room the prompt leaves."""
        served = await self.model_for(model, workspace)
        limit = await self.context_length(served, workspace)
        request = chat_request(plan, media, served, min(plan.max_tokens, limit or plan.max_tokens))
        try:
            completion = await self.chat.complete(request, workspace)
        except MediaError as exc:  # name the prediction's input, not the chat message we built
            raise relocated(exc, plan.kind) from None
        return interpret(plan, completion)


def relocated(exc: MediaError, kind: str) -> MediaError:
    """The media step's error about ``messages[0].content[i]`` as one about ``images[i]`` (or ``url``)."""
    found = _CHAT_PART.match(exc.param or "")
    if found is None:
        return exc
    param = "url" if kind == "video" else f"images[{found.group(1)}]"
    exc.message = exc.message.replace(found.group(0), param)
    exc.param = param
    exc.args = (exc.message,)
    return exc


def interpret(plan: Plan, completion: ChatCompletion) -> Outcome:
    """The parsed answer, its confidence (when asked for) and grounding confidence levels."""
    choice = completion.choices[0]
    if choice.finish_reason == "length":
        raise UnprocessableError(
            f"the answer was cut off at `max_tokens` ({plan.max_tokens}) before it was complete; "
            "raise `config.max_tokens`",
            param="config.max_tokens",
            code="max_tokens_reached",
        )
    try:
        answer = json.loads(choice.message.content or "")
    except ValueError as exc:  # the chat service checked it; this would be a gateway bug
        raise InvalidStructuredOutputError(f"the answer is not JSON: {exc}") from None
    scores = choice.confidence if choice.confidence is not msgspec.UNSET else None
    if plan.grounding and scores:
        grounding.add_confidence_levels(answer, scores)
    usage = completion.usage
    return Outcome(
        response=answer,
        confidence=scores if plan.confidence else None,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )
