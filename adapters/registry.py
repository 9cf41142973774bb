"""LoRA adapters by name: which base model each belongs to, and loading them into engines when needed.

An adapter is registered under a name with its directory and the name of its base model (by default the
``base_model_name_or_path`` of its ``adapter_config.json``, which ``finetune`` sets to the served name). A
request for ``model=<adapter name>`` goes to an engine serving the base model, preferring one that already
has the adapter loaded; ``ensure_loaded`` loads it there with ``POST /v1/load_lora_adapter`` first.

- One lock per adapter name, so concurrent first requests load it once (as vLLM's own LoRA registry in
  ``entrypoints/openai/models/serving.py`` does); loads into one engine are serialised by a lock per engine,
  so its capacity check and load are one step.
- Each engine holds at most ``capacity`` adapters; loading one more unloads the least recently used first,
  but never one that a request is being sent with (``using``): vLLM checks the adapter's name when it
  accepts a request, so unloading it in between made that request a 404. When every loaded adapter is in
  use, the load waits for one to be free (``slot_wait_s``, then a 503).
- Engines that resolve adapters from the shared model store themselves (``engines_resolve``: engines on
  other hosts with vlm-gateway's vLLM plugin, ``adapters/vllm_store_resolver.py``) are not sent a path: the
  first request for the name makes the engine fetch it. An engine whose model list already shows the adapter
  (loaded there through any gateway) counts as warm.
- An engine restart loses its adapters: when the pool reports the engine down, the registry forgets what
  it had loaded there and loads it again when the engine is back up (or on the next request). An engine
  that answers "not found" for a loaded adapter (restarted between polls) is handled the same way, by
  ``forget`` and a retry in the chat service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import EngineFailed, EngineRejected, EngineUnavailable, UnknownModel
from adapters.pool import Engine, EnginePool, ServedModel

log = logging.getLogger("vlmgw.adapters")


class AdapterError(ValueError):
    """A registration that cannot work (bad directory, name clash); the message says why."""


@dataclass(frozen=True)
class Adapter:
    name: str
    path: str
    base_model: str
    rank: int | None = None
    created: int = 0


def read_adapter_config(path: str | Path) -> dict[str, object]:
    config = Path(path) / "adapter_config.json"
    try:
        raw = json.loads(config.read_text())
    except FileNotFoundError:
        raise AdapterError(f"{path} is not a LoRA adapter directory (no adapter_config.json)") from None
    except (OSError, ValueError) as exc:
        raise AdapterError(f"cannot read {config}: {exc}") from None
    if not isinstance(raw, dict):
        raise AdapterError(f"{config} is not a JSON object")
    return raw


def parse_adapter_flag(flag: str) -> tuple[str, str]:
    """``NAME=DIR`` (the ``--adapter`` flag and ``VLMGW_ADAPTERS`` items) as (name, dir)."""
    name, sep, path = flag.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise AdapterError(f"adapter `{flag}`: expected NAME=DIR")
    return name.strip(), path.strip()


class AdapterRegistry:
    """Registered adapters and what each engine has loaded, in least-recently-used order."""

    def __init__(
        self,
        pool: EnginePool,
        *,
        capacity: int = 4,
        max_rank: int | None = None,
        engines_resolve: bool = False,
        slot_wait_s: float = 120.0,
    ) -> None:
        if capacity < 1:
            raise ValueError("an engine must be able to hold at least one adapter")
        self.pool = pool
        self.capacity = capacity
        self.max_rank = max_rank
        self.engines_resolve = engines_resolve
        self._adapters: dict[str, Adapter] = {}
        self._loaded: dict[str, OrderedDict[str, float]] = {}  # engine url -> adapter name -> last use
        self._adapter_locks: dict[str, asyncio.Lock] = {}
        self._engine_locks: dict[str, asyncio.Lock] = {}
        self._to_reload: dict[str, list[str]] = {}  # engine url -> adapters it had when it went down
        self._in_use: dict[str, Counter[str]] = {}  # engine url -> adapter name -> requests being sent
        self._released = asyncio.Condition()
        self.slot_wait_s = slot_wait_s
        self._tasks: set[asyncio.Task[None]] = set()
        pool.subscribe(self.on_engine_state)

    # -- registration ------------------------------------------------------------------------------------
    def register(self, name: str, path: str | Path, base_model: str | None = None) -> Adapter:
        """Add (or replace) an adapter; the platform API calls this for each trained version."""
        config = read_adapter_config(path)
        base = base_model or config.get("base_model_name_or_path")
        if not isinstance(base, str) or not base:
            raise AdapterError(f"adapter `{name}`: no base model given and none in its adapter_config.json")
        rank = config.get("r")
        if self.max_rank is not None and isinstance(rank, int) and rank > self.max_rank:
            raise AdapterError(
                f"adapter `{name}` has rank {rank}; the engine serves ranks up to {self.max_rank} "
                "(raise --max-lora-rank / VLMGW_ENGINE_MAX_LORA_RANK)"
            )
        if any(e.expected_model == name for e in self.pool.engines) or name == base:
            raise AdapterError(f"adapter name `{name}` is the name of a base model")
        old = self._adapters.get(name)
        adapter = Adapter(name, str(Path(path).resolve()), base, rank if isinstance(rank, int) else None,
                          int(time.time()))  # fmt: skip
        self._adapters[name] = adapter
        if old is not None and old.path != adapter.path:
            for loaded in self._loaded.values():  # the next request loads the new files
                loaded.pop(name, None)
        return adapter

    def unregister(self, name: str) -> None:
        self._adapters.pop(name, None)

    def get(self, name: str) -> Adapter | None:
        return self._adapters.get(name)

    def adapters(self) -> list[Adapter]:
        return sorted(self._adapters.values(), key=lambda a: a.name)

    def served_models(self) -> list[ServedModel]:
        """Registered adapters as model-list entries (``parent`` = base), loaded or not."""
        return [ServedModel(a.name, a.created, parent=a.base_model, root=a.path) for a in self.adapters()]

    def loaded_on(self, engine: Engine) -> list[str]:
        """Adapters loaded on an engine, least recently used first."""
        return list(self._loaded.get(engine.url, ()))

    # -- routing and loading ------------------------------------------------------------------------------
    async def engine_for(self, model: str) -> Engine | None:
        """For an adapter name: an engine serving its base with the adapter loaded. None for other names."""
        adapter = self._adapters.get(model)
        if adapter is None:
            return None
        engine = self._choose(adapter)
        await self.ensure_loaded(engine, model)
        return engine

    def _choose(self, adapter: Adapter) -> Engine:
        try:
            base_engine = self.pool.route(adapter.base_model)
        except UnknownModel:
            raise EngineUnavailable(
                f"no engine serves `{adapter.base_model}`, the base model of adapter `{adapter.name}`"
            ) from None
        ready = [e for e in self.pool.engines if e.up and e.serves(adapter.base_model)]
        warm = [e for e in ready if adapter.name in self._loaded.get(e.url, ()) or adapter.name in e.models]
        return min(warm, key=lambda e: e.inflight) if warm else base_engine

    async def ensure_loaded(self, engine: Engine, name: str) -> None:
        """Load adapter ``name`` into ``engine`` unless it is there, evicting the least recently used."""
        adapter = self._adapters.get(name)
        if adapter is None:
            raise UnknownModel(name)
        loaded = self._loaded.setdefault(engine.url, OrderedDict())
        if name in loaded:
            loaded[name] = time.monotonic()
            loaded.move_to_end(name)
            return
        async with self._lock(self._adapter_locks, name), self._lock(self._engine_locks, engine.url):
            if name in loaded:
                loaded.move_to_end(name)
                return
            while len(loaded) >= self.capacity:
                await self._unload(engine, await self._evictable(engine, loaded))
            await self._load(engine, adapter)
            loaded[name] = time.monotonic()

    @contextlib.asynccontextmanager
    async def using(self, engine: Engine, name: str) -> AsyncIterator[None]:
        """While a request for ``name`` is being sent to ``engine`` (until the engine has accepted it), the
        adapter is not evicted there. A no-op for names that are not adapters (``ModelCatalog.call`` does
        not even enter it for a base model)."""
        if name not in self._adapters:
            yield
            return
        counts = self._in_use.setdefault(engine.url, Counter())
        counts[name] += 1
        try:
            yield
        finally:
            counts[name] -= 1
            if counts[name] <= 0:
                del counts[name]
                async with self._released:
                    self._released.notify_all()

    async def _evictable(self, engine: Engine, loaded: OrderedDict[str, float]) -> str:
        """The least recently used loaded adapter that no request is using; waits for one to be free."""

        def free() -> str | None:
            busy = self._in_use.get(engine.url, Counter())
            return next((n for n in loaded if busy[n] <= 0), None)

        async with self._released:
            try:
                await asyncio.wait_for(self._released.wait_for(lambda: free() is not None), self.slot_wait_s)
            except TimeoutError:
                waited = f"{self.slot_wait_s:.0f} s"
                raise EngineUnavailable(
                    f"all {self.capacity} adapter slots of {engine.url} stayed in use for {waited}"
                ) from None
        found = free()
        assert found is not None
        return found

    def forget(self, engine: Engine, name: str | None = None) -> None:
        """The engine no longer has ``name`` (or any adapter, when None); the next use loads it again."""
        if name is None:
            self._loaded.pop(engine.url, None)
        else:
            self._loaded.get(engine.url, OrderedDict()).pop(name, None)

    def on_engine_state(self, engine: Engine) -> None:
        """Pool listener (subscribed at construction). An engine that went down (restart, crash) comes back
        without adapters: forget them, and load them again in the background once it is up, so the first
        request after a restart does not wait for the load (a request that comes first loads it itself)."""
        if not engine.up:
            had = self.loaded_on(engine)
            if had:
                log.info("engine %s went down; adapters %s will be loaded again", engine.url, ", ".join(had))
                self._to_reload[engine.url] = had
                self.forget(engine)
            return
        names = [n for n in self._to_reload.pop(engine.url, []) if n in self._adapters]
        if names:
            task = asyncio.get_running_loop().create_task(self._reload(engine, names))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reload(self, engine: Engine, names: list[str]) -> None:
        for name in names:  # least recently used first, so the LRU order survives the restart
            try:
                await self.ensure_loaded(engine, name)
            except Exception as exc:  # the next request for it retries and reports the error
                log.warning("could not re-load adapter %s into %s: %s", name, engine.url, exc)

    async def _load(self, engine: Engine, adapter: Adapter) -> None:
        if self.engines_resolve:
            return  # the engine fetches it from the shared store on the first request for its name
        started = time.monotonic()
        try:
            await engine.client.load_lora(adapter.name, adapter.path)
        except EngineRejected as exc:
            if exc.status == 400 and "already" in exc.message:
                return  # loaded by us before a gateway restart, or by another gateway: usable as it is
            raise EngineFailed(
                f"could not load adapter `{adapter.name}` from {adapter.path}: {exc.message}"
            ) from exc
        except EngineFailed as exc:
            raise EngineFailed(
                f"could not load adapter `{adapter.name}` from {adapter.path}: {exc.message}"
            ) from exc
        log.info("loaded adapter %s into %s in %.0f ms", adapter.name, engine.url,
                 (time.monotonic() - started) * 1000)  # fmt: skip

    async def _unload(self, engine: Engine, name: str) -> None:
        self._loaded[engine.url].pop(name, None)
        try:
            await engine.client.unload_lora(name)
        except EngineRejected as exc:
            if exc.status != 404:  # already gone is fine
                raise
        log.info("unloaded least recently used adapter %s from %s", name, engine.url)

    @staticmethod
    def _lock(locks: dict[str, asyncio.Lock], key: str) -> asyncio.Lock:
        lock = locks.get(key)
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        return lock
