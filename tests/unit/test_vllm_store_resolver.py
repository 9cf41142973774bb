"""vLLM's view of trained adapters through the store: the resolver plugin finds a published name, copies the
adapter from the store into its own cache, and answers None for names the store does not have. (On a
real engine: tests/integration/test_scale_out.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from adapters.vllm_store_resolver import RESOLVER_NAME, adapter_folder, register
from models_store.store import LocalFolderStore


def published(root: Path) -> LocalFolderStore:
    store = LocalFolderStore(root / "store")
    store.write("adapters/t1/v1/adapter/adapter_config.json", b'{"r": 8, "peft_type": "LORA"}')
    store.write("adapters/t1/v1/adapter/adapter_model.safetensors", b"weights")
    store.write("lora/task-t1-v1.json", json.dumps({"key": "adapters/t1/v1/adapter"}).encode())
    return store


def test_adapter_folder_by_published_name(tmp_path: Path) -> None:
    store = published(tmp_path)
    folder = adapter_folder(store, "task-t1-v1")
    assert folder is not None and (folder / "adapter_model.safetensors").read_bytes() == b"weights"
    assert adapter_folder(store, "task-t1-v2") is None
    assert adapter_folder(store, "../../etc/passwd") is None


def test_the_plugin_registers_a_resolver_that_vllm_can_ask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("vllm.lora.resolver")
    from vllm.lora.resolver import LoRAResolverRegistry

    published(tmp_path)
    monkeypatch.setenv("VLMGW_STORE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("VLMGW_STORE_CACHE_DIR", str(tmp_path / "engine-cache"))
    register()
    resolver = LoRAResolverRegistry.get_resolver(RESOLVER_NAME)
    request = asyncio.run(resolver.resolve_lora("tiny", "task-t1-v1"))
    assert request is not None and request.lora_name == "task-t1-v1"
    assert Path(request.lora_path, "adapter_config.json").is_file()
    assert asyncio.run(resolver.resolve_lora("tiny", "unknown")) is None
