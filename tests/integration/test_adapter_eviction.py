"""LRU eviction on real vLLM: more adapters than the gateway may keep loaded in the engine.

Our own gateway (``vlmgw serve --engine-url`` to the session's vLLM, so it starts in seconds) serves three
adapters with random LoRA weights (each answers differently) and may keep one loaded at a time
(``VLMGW_ADAPTER_CAPACITY=1``). Asked in turn, one after another and then all at once, every adapter gives
the answer it gave first (its own weights, loaded again after being evicted), the engine never holds
more than one of them, and no request fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import MODEL, GatewayProcess, stop_gateway
from tests.support.export_model import make_adapter
from tests.support.session_gateway import start_engine_gateway

pytestmark = pytest.mark.integration

KEY = "eviction-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}
NAMES = ["evict-a", "evict-b", "evict-c"]
ADAPTER_STD = 0.5  # random LoRA B matrices this large make each adapter answer differently
PROMPT = [{"role": "user", "content": "Name three colours."}]


@contextmanager
def adapters_gateway(
    root: Path, engine_url: str, tiny_model_dir: Path, names: list[str], capacity: int
) -> Iterator[GatewayProcess]:
    """Our gateway in front of the session's engine, serving one random LoRA per name (seeded, so each
    answers differently) and keeping at most ``capacity`` of them loaded in the engine."""
    made = [make_adapter(tiny_model_dir, root / n, served_name=MODEL, seed=i + 1, std=ADAPTER_STD)
            for i, n in enumerate(names)]  # fmt: skip
    adapters = [a for name, path in zip(names, made, strict=True) for a in ("--adapter", f"{name}={path}")]
    gw = start_engine_gateway(root / "data", engine_url, KEY, *adapters, model_dir=tiny_model_dir,
                              VLMGW_ADAPTER_CAPACITY=str(capacity))  # fmt: skip
    try:
        yield gw
    finally:
        stop_gateway(gw)


@pytest.fixture(scope="module")
def small_gateway(
    tmp_path_factory: pytest.TempPathFactory, engine_url: str, tiny_model_dir: Path
) -> Iterator[GatewayProcess]:
    with adapters_gateway(tmp_path_factory.mktemp("eviction"), engine_url, tiny_model_dir, NAMES, 1) as gw:
        yield gw


def ask(http: httpx.Client, model: str) -> str:
    body = {"model": model, "messages": PROMPT, "max_tokens": 8, "temperature": 0}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def ours_loaded(engine_url: str) -> set[str]:
    served = httpx.get(engine_url + "/v1/models", timeout=10).json()["data"]
    return {m["id"] for m in served} & set(NAMES)


def test_least_recently_used_adapters_are_evicted_and_come_back_with_their_own_weights(
    small_gateway: GatewayProcess, engine_url: str
) -> None:
    http = httpx.Client(base_url=small_gateway.url, headers=HEADERS, timeout=120)
    first = {name: ask(http, name) for name in NAMES}
    base = ask(http, MODEL)
    assert len({*first.values(), base}) >= 3, f"the adapters do not change the answers: {first}, {base}"
    for name in [*NAMES, *reversed(NAMES), *NAMES]:
        assert ask(http, name) == first[name], name
        assert ours_loaded(engine_url) == {name}  # the one just used; the others were unloaded
    assert small_gateway.log_tail(400).count("unloaded least recently used adapter") >= 9

    async def all_at_once() -> list[tuple[str, int, str]]:
        async with httpx.AsyncClient(base_url=small_gateway.url, headers=HEADERS, timeout=120) as client:

            async def one(name: str) -> tuple[str, int, str]:
                body = {"model": name, "messages": PROMPT, "max_tokens": 8, "temperature": 0}
                response = await client.post("/v1/chat/completions", json=body)
                ok = response.status_code == 200
                return (
                    name,
                    response.status_code,
                    response.json()["choices"][0]["message"]["content"] if ok else "",
                )

            return await asyncio.gather(*(one(name) for name in NAMES * 4))

    results = asyncio.run(all_at_once())
    assert [status for _, status, _ in results] == [200] * len(results), results
    assert all(answer == first[name] for name, _, answer in results), results
    assert len(ours_loaded(engine_url)) <= 1
