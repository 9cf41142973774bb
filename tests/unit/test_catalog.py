"""The model catalog and the chat service over it: a model kind's names reach the engine as the adapter they
stand for, for whole answers, structured answers and streams; other workspaces get 404 (fake engine: logic
only; the real path is tests/integration/test_training_loop.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from adapters.engine_client import EngineClient
from adapters.pool import Engine, EnginePool
from adapters.registry import AdapterRegistry
from gateway.catalog import ModelCatalog
from gateway.catalog.catalog import Workspace
from gateway.errors import ModelNotFoundError
from gateway.media.pipeline import MediaPipeline
from gateway.metrics import Metrics
from gateway.openai_api.chat import ChatService
from gateway.openai_api.protocol import ChatCompletionRequest, ModelCard
from gateway.settings import Settings
from gateway.structured.service import StructuredOutputService
from tests.fakes import FakeVLLM


class AliasKind:
    """A model kind with one name, ``alias``, served by adapter ``colours`` in workspace ``ws-a`` only."""

    def claims(self, model: str) -> bool:
        return model == "alias"

    async def adapter_for(self, model: str, workspace: Workspace) -> str:
        if workspace != "ws-a":
            raise ModelNotFoundError(model)
        return "colours"

    async def visible(self, cards: list[ModelCard], workspace: Workspace) -> list[ModelCard]:
        return [c for c in cards if c.id != "colours" or workspace == "ws-a"]


@pytest.fixture
async def chat(fake_engine: FakeVLLM, tmp_path: Path) -> AsyncIterator[ChatService]:
    engine = Engine(EngineClient(fake_engine.url, connect_timeout_s=1.0))
    pool = EnginePool([engine])
    await pool.refresh_all()
    registry = AdapterRegistry(pool, max_rank=16)
    (tmp_path / "colours").mkdir()
    (tmp_path / "colours" / "adapter_config.json").write_text(
        json.dumps({"r": 8, "base_model_name_or_path": "tiny"})
    )
    registry.register("colours", tmp_path / "colours")
    catalog = ModelCatalog(pool, registry, kinds=[AliasKind()])
    metrics = Metrics()
    media = MediaPipeline.from_settings(Settings(data_dir=tmp_path))
    yield ChatService(catalog, metrics, media, StructuredOutputService(metrics))
    await media.close()
    await engine.client.aclose()


def request(**fields: object) -> ChatCompletionRequest:
    body = {"model": "alias", "messages": [{"role": "user", "content": "hi"}], **fields}
    return msgspec.convert(body, ChatCompletionRequest)


async def test_a_kinds_name_reaches_the_engine_as_its_adapter(
    chat: ChatService, fake_engine: FakeVLLM
) -> None:
    answer = await chat.complete(request(), "ws-a")
    assert fake_engine.requests[-1]["model"] == "colours" and answer.model == "colours"
    fake_engine.reply = '{"a": 1}'
    await chat.complete(request(response_format={"type": "json_object"}), "ws-a")
    assert fake_engine.requests[-1]["model"] == "colours"
    relay = await chat.stream(request(stream=True), "ws-a")
    events = [e async for e in relay]
    # events of one engine read leave together, so the last write may hold more than [DONE]
    assert fake_engine.requests[-1]["model"] == "colours" and b"".join(events).endswith(b"data: [DONE]\n\n")
    assert fake_engine.lora_calls == [("load", "colours")]


async def test_other_workspaces_do_not_find_the_name(chat: ChatService, fake_engine: FakeVLLM) -> None:
    with pytest.raises(ModelNotFoundError):
        await chat.complete(request(), "ws-b")
    with pytest.raises(ModelNotFoundError):
        await chat.stream(request(stream=True), "ws-b")
    assert fake_engine.requests == []
    listed = await chat.catalog.list_for("ws-b")
    assert [c.id for c in listed.data] == ["tiny"]
    assert {c.id for c in (await chat.catalog.list_for("ws-a")).data} == {"tiny", "colours"}
