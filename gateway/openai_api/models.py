"""GET /v1/models: the base models and adapters (loaded or registered, with ``parent``), in OpenAI's list
shape."""

from __future__ import annotations

from typing import Protocol

from adapters.errors import UnknownModel
from adapters.pool import EnginePool, ServedModel
from adapters.registry import AdapterRegistry
from gateway.openai_api.protocol import ModelCard, ModelList

OWNER = "vlm-gateway"


def card(model: ServedModel) -> ModelCard:
    return ModelCard(
        id=model.id,
        created=model.created,
        owned_by=OWNER,
        root=model.root,
        parent=model.parent,
        max_model_len=model.max_model_len,
    )


class ModelFilter(Protocol):
    """Narrows the model list to what one workspace may use (trained task models are per workspace)."""

    async def visible(self, models: ModelList, workspace: str | None) -> ModelList: ...


class ModelService:
    visibility: ModelFilter | None = None  # set by the app when trained task models are served

    def __init__(self, pool: EnginePool, adapters: AdapterRegistry | None = None) -> None:
        self.pool = pool
        self.adapters = adapters

    def served(self) -> list[ServedModel]:
        """What engines serve, plus registered adapters not loaded anywhere yet (they load on first use)."""
        models = self.pool.served_models()
        if self.adapters is not None:
            seen = {m.id for m in models}
            models += [a for a in self.adapters.served_models() if a.id not in seen]
        return models

    def list(self) -> ModelList:
        return ModelList(data=[card(m) for m in self.served()])

    async def list_for(self, workspace: str | None) -> ModelList:
        models = self.list()
        return models if self.visibility is None else await self.visibility.visible(models, workspace)

    async def get_for(self, model_id: str, workspace: str | None) -> ModelCard:
        for model in (await self.list_for(workspace)).data:
            if model.id == model_id:
                return model
        raise UnknownModel(model_id)
