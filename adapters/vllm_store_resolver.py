"""A vLLM plugin: engines on other hosts load trained adapters by name from the vlm-gateway model store.

vLLM asks its LoRA resolvers (``vllm/lora/resolver.py``) for a model name it does not know when runtime
LoRA updating is on (``VLLM_ALLOW_RUNTIME_LORA_UPDATING=1``). This resolver looks the name up in the store
the gateways share (``VLMGW_STORE_URL``: ``s3://bucket/prefix`` with the usual ``AWS_*`` settings, or a
folder): publishing a version writes ``lora/<name>.json`` (``{"key": "adapters/<task>/v<N>/adapter", ...}``),
and the resolver copies that folder into a local cache (``VLMGW_STORE_CACHE_DIR``, default
``~/.cache/vlm-gateway/engine-store``) and hands vLLM the path, as vLLM's own filesystem resolver does for a
local folder. So any gateway can route ``task-<id>`` to any replica, and a replica that already has the
adapter keeps it (vLLM lists it in ``/v1/models``, which the gateways read to prefer warm replicas).

Installed with vlm-gateway as the entry point ``vlmgw_store_resolver`` of vLLM's ``vllm.general_plugins``
group; it does nothing unless ``VLMGW_STORE_URL`` is set. The gateway never imports this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from models_store.store import Store, StoreError, open_store

log = logging.getLogger("vlmgw.resolver")

RESOLVER_NAME = "vlm-gateway store"
DEFAULT_CACHE = Path.home() / ".cache" / "vlm-gateway" / "engine-store"


def adapter_folder(store: Store, name: str) -> Path | None:
    """The local copy of the adapter published as ``name``, or None when the store has no such name."""
    try:
        pointer = json.loads(store.read(f"lora/{name}.json"))
    except (FileNotFoundError, StoreError, ValueError):
        return None
    folder = store.materialise_dir(str(pointer["key"]))
    return folder if (folder / "adapter_config.json").is_file() else None


def register() -> None:
    """vLLM calls this in each of its processes; registers the resolver when the store is configured."""
    url = os.environ.get("VLMGW_STORE_URL")
    if not url:
        return
    from vllm.lora.request import LoRARequest
    from vllm.lora.resolver import LoRAResolver, LoRAResolverRegistry

    store = open_store(url, Path(os.environ.get("VLMGW_STORE_CACHE_DIR") or DEFAULT_CACHE))

    class StoreResolver(LoRAResolver):  # type: ignore[misc]
        async def resolve_lora(self, base_model_name: str, lora_name: str) -> Any:
            folder = await asyncio.to_thread(adapter_folder, store, lora_name)
            if folder is None:
                return None
            log.info("adapter %s resolved from %s into %s", lora_name, store.url, folder)
            return LoRARequest(lora_name=lora_name, lora_int_id=abs(hash(lora_name)), lora_path=str(folder))

    if RESOLVER_NAME not in LoRAResolverRegistry.get_supported_resolvers():
        LoRAResolverRegistry.register_resolver(RESOLVER_NAME, StoreResolver())
