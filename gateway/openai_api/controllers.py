"""HTTP routes of the OpenAI-compatible API: thin wrappers around one service call each."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from gateway.auth import require_api_key
from gateway.openai_api.chat import ChatService
from gateway.openai_api.models import ModelService
from gateway.openai_api.protocol import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList
from gateway.openai_api.streaming import EventStream


class ChatController(Controller):
    path = "/v1/chat/completions"
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["OpenAI"]  # noqa: RUF012

    @post(
        "/",
        summary="Create a chat completion",
        description="OpenAI's chat completions, with images and videos as content parts; "
        "`stream: true` answers with server-sent events.",
        status_code=200,
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ChatCompletionRequest],
        chat_service: NamedDependency[ChatService],
    ) -> ChatCompletion | EventStream:
        workspace = str(request.state.principal.default_workspace)  # where `image://ID` parts are found
        if data.stream:
            return EventStream(await chat_service.stream(data, workspace))
        return await chat_service.complete(data, workspace)


class ModelsController(Controller):
    path = "/v1/models"
    guards = [require_api_key]  # noqa: RUF012
    tags = ["OpenAI"]  # noqa: RUF012

    @get("/", summary="List models: base models and loaded adapters (with `parent`)")
    async def list_models(
        self, request: Request[Any, Any, Any], model_service: NamedDependency[ModelService]
    ) -> ModelList:
        return await model_service.list_for(str(request.state.principal.default_workspace))

    @get("/{model_id:path}", summary="Retrieve one model")
    async def get_model(
        self,
        request: Request[Any, Any, Any],
        model_id: FromPath[str],
        model_service: NamedDependency[ModelService],
    ) -> ModelCard:
        workspace = str(request.state.principal.default_workspace)
        return await model_service.get_for(model_id.lstrip("/"), workspace)
