"""HTTP routes of the OpenAI-compatible API: thin wrappers around one service call each.

Requests act in the key's default workspace (where ``image://ID`` parts and task models are found), or in the
one a ``workspace`` query parameter (or, in a chat body, a ``workspace`` field) names, as on ``/vlm/v2``."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from gateway.auth import require_api_key
from gateway.catalog import ModelCatalog
from gateway.dependencies import Ws
from gateway.openai_api.chat import ChatService
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
        data: JSONBody[ChatCompletionRequest],
        chat_service: NamedDependency[ChatService],
        ws: Ws,
    ) -> ChatCompletion | EventStream:
        if data.stream:
            return EventStream(await chat_service.stream(data, ws))
        return await chat_service.complete(data, ws)


class ModelsController(Controller):
    path = "/v1/models"
    guards = [require_api_key]  # noqa: RUF012
    tags = ["OpenAI"]  # noqa: RUF012

    @get("/", summary="List models: base models and loaded adapters (with `parent`)")
    async def list_models(self, catalog: NamedDependency[ModelCatalog], ws: Ws) -> ModelList:
        return await catalog.list_for(ws)

    @get("/{model_id:path}", summary="Retrieve one model")
    async def get_model(
        self, model_id: FromPath[str], catalog: NamedDependency[ModelCatalog], ws: Ws
    ) -> ModelCard:
        return await catalog.get_for(model_id.lstrip("/"), ws)
