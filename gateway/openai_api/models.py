"""GET /v1/models: the base models and loaded adapters of every engine, in OpenAI's list shape."""

from __future__ import annotations

from adapters.errors import UnknownModel
from adapters.pool import EnginePool, ServedModel
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


class ModelService:
    def __init__(self, pool: EnginePool) -> None:
        self.pool = pool

    def list(self) -> ModelList:
        return ModelList(data=[card(m) for m in self.pool.served_models()])

    def get(self, model_id: str) -> ModelCard:
        for model in self.pool.served_models():
            if model.id == model_id:
                return card(model)
        raise UnknownModel(model_id)
