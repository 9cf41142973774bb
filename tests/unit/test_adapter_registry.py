"""Adapter registry: registration checks, one load under concurrency, LRU unloading, forgetting after an
engine restart, and routing of chat requests by adapter name (fake engine: logic only; the real vLLM path
is in tests/integration/test_adapters.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.engine_client import EngineClient
from adapters.errors import EngineUnavailable
from adapters.pool import Engine, EnginePool
from adapters.registry import AdapterError, AdapterRegistry, parse_adapter_flag
from tests.fakes import FakeVLLM


def adapter_dir(root: Path, name: str, rank: int = 8, base: str = "tiny") -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": rank, "base_model_name_or_path": base}))
    return path


@pytest.fixture
async def pool(fake_engine: FakeVLLM) -> AsyncIterator[EnginePool]:
    engine = Engine(EngineClient(fake_engine.url, connect_timeout_s=1.0))
    pool = EnginePool([engine])
    await pool.refresh_all()
    yield pool
    await engine.client.aclose()


def registry_with(pool: EnginePool, root: Path, names: list[str], capacity: int = 4) -> AdapterRegistry:
    registry = AdapterRegistry(pool, capacity=capacity, max_rank=16)
    for name in names:
        registry.register(name, adapter_dir(root, name))
    return registry


def test_registration_checks(tmp_path: Path) -> None:
    registry = AdapterRegistry(EnginePool([]), max_rank=16)
    with pytest.raises(AdapterError, match=r"no adapter_config\.json"):
        registry.register("a", tmp_path / "missing")
    with pytest.raises(AdapterError, match="rank 32"):
        registry.register("big", adapter_dir(tmp_path, "big", rank=32))
    with pytest.raises(AdapterError, match="name of a base model"):
        registry.register("tiny", adapter_dir(tmp_path, "t"))
    (tmp_path / "nobase").mkdir()
    (tmp_path / "nobase" / "adapter_config.json").write_text('{"r": 8}')
    with pytest.raises(AdapterError, match="no base model"):
        registry.register("nobase", tmp_path / "nobase")
    adapter = registry.register("ok", adapter_dir(tmp_path, "ok"))
    assert (adapter.base_model, adapter.rank) == ("tiny", 8)
    assert registry.register("other", adapter_dir(tmp_path, "ok"), base_model="qwen").base_model == "qwen"
    assert [m.parent for m in registry.served_models()] == ["tiny", "qwen"]
    with pytest.raises(AdapterError, match="NAME=DIR"):
        parse_adapter_flag("just-a-name")
    assert parse_adapter_flag("a=/x=y") == ("a", "/x=y")


async def test_concurrent_first_requests_load_once(
    pool: EnginePool, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    fake_engine.load_delay_s = 0.2
    registry = registry_with(pool, tmp_path, ["a"])
    engines = await asyncio.gather(*(registry.engine_for("a") for _ in range(5)))
    assert all(e is pool.engines[0] for e in engines)
    assert fake_engine.lora_calls == [("load", "a")]
    assert fake_engine.loras == {"a": str((tmp_path / "a").resolve())}


async def test_least_recently_used_adapter_is_unloaded_at_capacity(
    pool: EnginePool, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    registry = registry_with(pool, tmp_path, ["a", "b", "c"], capacity=2)
    for name in ("a", "b", "a", "c"):
        await registry.engine_for(name)
    assert fake_engine.lora_calls == [("load", "a"), ("load", "b"), ("unload", "b"), ("load", "c")]
    assert registry.loaded_on(pool.engines[0]) == ["a", "c"]
    assert set(fake_engine.loras) == {"a", "c"}


async def test_engine_down_forgets_adapters_and_reloads_them(
    pool: EnginePool, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    registry = registry_with(pool, tmp_path, ["a"])
    engine = await registry.engine_for("a")
    pool.mark_down(engine, "engine process exited")
    assert registry.loaded_on(engine) == []
    fake_engine.loras.clear()  # the restarted engine has none
    await pool.refresh(engine)  # up again: the registry re-loads what it had, without a request
    for _ in range(100):
        if "a" in fake_engine.loras:
            break
        await asyncio.sleep(0.02)
    assert fake_engine.lora_calls == [("load", "a"), ("load", "a")]
    await registry.engine_for("a")  # already there: no third load
    assert fake_engine.lora_calls == [("load", "a"), ("load", "a")]


async def test_adapter_already_in_the_engine_counts_as_loaded(
    pool: EnginePool, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    registry = registry_with(pool, tmp_path, ["a"])
    fake_engine.loras["a"] = "/elsewhere"  # loaded by another gateway, or before our restart
    await registry.engine_for("a")
    assert registry.loaded_on(pool.engines[0]) == ["a"]


async def test_unregistered_names_are_not_adapters(pool: EnginePool, tmp_path: Path) -> None:
    assert await registry_with(pool, tmp_path, []).engine_for("tiny") is None


# -- through the gateway ---------------------------------------------------------------------------------


@pytest.fixture
def adapter_flags(tmp_path: Path) -> list[str]:
    return [f"{n}=" + str(adapter_dir(tmp_path / "adapters", n)) for n in ("colours", "shapes")]


async def test_chat_by_adapter_name_loads_it_and_routes_to_the_base_engine(
    make_client: Callable[..., Any], fake_engine: FakeVLLM, adapter_flags: list[str]
) -> None:
    async with make_client(fake_engine, adapters=adapter_flags) as client:
        listed = (await client.get("/v1/models")).json()["data"]
        assert {(m["id"], m.get("parent")) for m in listed} == {
            ("tiny", None), ("colours", "tiny"), ("shapes", "tiny")
        }  # fmt: skip
        body = {"model": "colours", "messages": [{"role": "user", "content": "hi"}]}
        resp = await client.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200 and resp.json()["model"] == "colours"
        assert fake_engine.requests[-1]["model"] == "colours"
        assert fake_engine.lora_calls == [("load", "colours")]
        stream = await client.post("/v1/chat/completions", json={**body, "model": "shapes", "stream": True})
        assert stream.status_code == 200 and "[DONE]" in stream.text
        assert fake_engine.lora_calls == [("load", "colours"), ("load", "shapes")]


async def test_engine_restart_between_polls_reloads_and_retries(
    make_client: Callable[..., Any], fake_engine: FakeVLLM, adapter_flags: list[str]
) -> None:
    body = {"model": "colours", "messages": [{"role": "user", "content": "hi"}]}
    async with make_client(fake_engine, adapters=adapter_flags) as client:
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        fake_engine.loras.clear()  # restarted without the gateway noticing yet
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        fake_engine.loras.clear()
        assert (await client.post("/v1/chat/completions", json={**body, "stream": True})).status_code == 200
    assert fake_engine.lora_calls == [("load", "colours")] * 3


async def test_adapter_whose_files_vanished_is_a_clear_502(
    make_client: Callable[..., Any], fake_engine: FakeVLLM, adapter_flags: list[str]
) -> None:
    import shutil

    body = {"model": "colours", "messages": [{"role": "user", "content": "hi"}]}
    async with make_client(fake_engine, adapters=adapter_flags) as client:
        shutil.rmtree(adapter_flags[0].split("=", 1)[1])  # registered, then deleted before first use
        resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 502
    assert "could not load adapter `colours`" in resp.json()["error"]["message"]


async def test_engines_that_resolve_from_the_store_are_not_sent_a_path(
    pool: EnginePool, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    registry = AdapterRegistry(pool, capacity=1, max_rank=16, engines_resolve=True)
    for name in ("a", "b"):
        registry.register(name, adapter_dir(tmp_path, name))
    await registry.engine_for("a")
    assert fake_engine.lora_calls == []  # the engine fetches `a` itself on the request's arrival
    await registry.engine_for("b")  # over capacity: the least recently used is still unloaded by name
    assert fake_engine.lora_calls == [("unload", "a")]


async def test_a_replica_whose_model_list_shows_the_adapter_is_preferred(
    fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    from tests.fakes import FakeVLLM as Fake

    other = Fake()
    other.start()
    try:
        engines = [Engine(EngineClient(url, connect_timeout_s=1.0)) for url in (fake_engine.url, other.url)]
        pool = EnginePool(engines)
        other.loras["a"] = "/resolved/by/another/gateway"
        await pool.refresh_all()
        registry = AdapterRegistry(pool, engines_resolve=True)
        registry.register("a", adapter_dir(tmp_path, "a"))
        engines[0].inflight = 0
        engines[1].inflight = 5  # busier, but it holds the adapter
        assert await registry.engine_for("a") is engines[1]
    finally:
        for engine in engines:
            await engine.client.aclose()
        other.stop()


async def test_an_adapter_being_sent_with_is_not_evicted_until_its_request_is_accepted(
    pool: EnginePool, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    registry = registry_with(pool, tmp_path, ["a", "b", "c"], capacity=2)
    engine = pool.engines[0]
    await registry.engine_for("a")
    await registry.engine_for("b")
    async with registry.using(engine, "a"):  # a is the least recently used, but a request is using it
        await registry.engine_for("c")
        assert fake_engine.lora_calls[-2:] == [("unload", "b"), ("load", "c")]
    async with registry.using(engine, "a"), registry.using(engine, "c"):  # every slot in use: wait
        waiting = asyncio.create_task(registry.engine_for("b"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 5)  # a slot was freed when the requests were accepted
    assert registry.loaded_on(engine) == ["c", "b"]


async def test_a_slot_that_stays_in_use_is_a_503(
    pool: EnginePool, fake_engine: FakeVLLM, tmp_path: Path
) -> None:
    registry = registry_with(pool, tmp_path, ["a", "b"], capacity=1)
    registry.slot_wait_s = 0.1
    await registry.engine_for("a")
    async with registry.using(pool.engines[0], "a"):
        with pytest.raises(EngineUnavailable, match="adapter slots"):
            await registry.engine_for("b")
