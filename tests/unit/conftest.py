"""Unit-test fixtures: the gateway in front of a fake engine (logic only; real vLLM is in integration/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.engine_client import EngineClient
from adapters.pool import Engine
from gateway.app import create_app
from gateway.settings import Settings
from models_store.tiny_model import TinyModelSpec, cached_tiny_model
from tests.fakes import FakeVLLM
from tests.support.fresh_sqlite import seed_database

AppFactory = Callable[..., Any]


@pytest.fixture
def fake_engine() -> Iterator[FakeVLLM]:
    fake = FakeVLLM()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def make_client(tmp_path: Path) -> Callable[..., AsyncTestClient[Any]]:
    """Build a test client for an app over the given fake engines and settings overrides."""

    def build(*fakes: FakeVLLM, **overrides: Any) -> AsyncTestClient[Any]:
        timeouts = {"connect_timeout_s": 1.0, "request_timeout_s": overrides.pop("request_timeout_s", 30.0)}
        settings = Settings(data_dir=tmp_path, engine_poll_interval_s=60.0, **overrides)
        if settings.database_url is None:
            seed_database(tmp_path)
        engines = [Engine(EngineClient(fake.url, **timeouts)) for fake in fakes]
        app = create_app(settings, engines=engines, say=lambda _m: None)
        return AsyncTestClient(app=app)

    return build


@pytest.fixture
async def client(
    make_client: Callable[..., AsyncTestClient[Any]], fake_engine: FakeVLLM
) -> AsyncIterator[Any]:
    async with make_client(fake_engine) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    """The tiny offline model pre-trained on colours (300 steps; built once and cached): the base the
    fine-tuning tests train on."""
    return cached_tiny_model(TinyModelSpec(pretrain_steps=300))
