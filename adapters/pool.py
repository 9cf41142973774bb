"""The set of engines behind the gateway, what each serves, and model-name routing.

One code path serves a spawned engine and engines given by URL. A background poller asks every engine for
``/health`` and ``/v1/models``; a request for model M goes to an up engine that serves M (a base model or a
loaded adapter), preferring the one with the fewest requests in flight. Several engines serving the same
base model are replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.engine_client import EngineClient
from adapters.errors import EngineFault, EngineUnavailable, UnknownModel
from adapters.supervisor import VLLMSupervisor

log = logging.getLogger("vlmgw.engines")


@dataclass(frozen=True)
class ServedModel:
    """A model an engine serves: a base model (``parent`` None) or a loaded LoRA adapter."""

    id: str
    created: int
    parent: str | None = None
    root: str | None = None
    max_model_len: int | None = None


@dataclass
class Engine:
    """One vLLM server: its client, its supervisor when spawned by us, and what it serves."""

    client: EngineClient
    supervisor: VLLMSupervisor | None = None
    expected_model: str | None = None
    up: bool = False
    known: bool = False
    models: dict[str, ServedModel] = field(default_factory=dict)
    inflight: int = 0
    last_error: str | None = None

    @property
    def url(self) -> str:
        return self.client.base_url

    @property
    def state(self) -> str:
        if self.supervisor is not None and self.supervisor.state != "up":
            return self.supervisor.state
        return "up" if self.up else "down"

    def serves(self, model: str) -> bool:
        return model in self.models or model == self.expected_model


EngineListener = Callable[[Engine], None]


class EnginePool:
    """Routes model names to engines and keeps their state fresh.

    Whoever needs to know when an engine goes down or comes back (the adapter registry, metrics) subscribes
    a listener; each is called with the engine after every state refresh and every ``mark_down``.
    """

    def __init__(
        self,
        engines: list[Engine],
        *,
        poll_interval_s: float = 2.0,
        listeners: list[EngineListener] | None = None,
    ) -> None:
        self.engines = engines
        self.poll_interval_s = poll_interval_s
        self._listeners: list[EngineListener] = list(listeners or [])
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def subscribe(self, listener: EngineListener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        for engine in self.engines:
            if engine.supervisor is not None:
                await engine.supervisor.start(
                    on_down=lambda e=engine: self.mark_down(e, "engine process exited"),  # type: ignore[misc]
                    on_ready=lambda e=engine: self.refresh(e),  # type: ignore[misc]
                )
        await self.refresh_all()  # URL engines are known from the first request on
        self._poller = asyncio.create_task(self._poll_forever(), name="engine-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for engine in self.engines:
            if engine.supervisor is not None:
                await engine.supervisor.stop()
            await engine.client.aclose()

    def route(self, model: str) -> Engine:
        """The engine to send a request for ``model`` to, or a 404 / 503 error: of the engines serving it
        that are up, the first with the fewest requests in flight."""
        best: Engine | None = None
        for engine in self.engines:  # one pass, no lists: this runs on every request
            if engine.up and engine.serves(model) and (best is None or engine.inflight < best.inflight):
                best = engine
        if best is not None:
            return best
        candidates = [e for e in self.engines if e.serves(model)]
        if not candidates:
            if any(not e.known for e in self.engines):
                raise EngineUnavailable("the engine is starting and has not yet said which models it serves")
            raise UnknownModel(model)
        states = ", ".join(f"{e.url} is {e.state}" for e in candidates)  # none of them is up
        raise EngineUnavailable(f"no engine serving `{model}` is ready ({states})",
                                retry_after=retry_after_s(candidates))  # fmt: skip

    def served_models(self) -> list[ServedModel]:
        """Every model any engine serves, each once (replicas collapse), bases first."""
        seen: dict[str, ServedModel] = {}
        for engine in self.engines:
            for served in engine.models.values():
                seen.setdefault(served.id, served)
            if engine.expected_model and engine.expected_model not in seen:
                seen[engine.expected_model] = ServedModel(engine.expected_model, int(time.time()))
        return sorted(seen.values(), key=lambda m: (m.parent is not None, m.id))

    def mark_down(self, engine: Engine, reason: str) -> None:
        if engine.up:
            log.warning("engine %s is down: %s", engine.url, reason)
        engine.up = False
        engine.last_error = reason
        self._notify(engine)
        self._wake.set()

    async def refresh(self, engine: Engine) -> None:
        """Ask one engine whether it is healthy and what it serves."""
        if engine.supervisor is not None and engine.supervisor.state not in ("up", "starting"):
            self.mark_down(engine, f"engine process is {engine.supervisor.state}")
            return
        if not await engine.client.is_healthy():
            self.mark_down(engine, "health check failed")
            return
        try:
            raw = await engine.client.list_models()
        except EngineFault as exc:
            self.mark_down(engine, exc.message)
            return
        engine.models = {m.id: m for m in (_served_model(item) for item in raw) if m is not None}
        engine.known = True
        if not engine.up:
            log.info("engine %s is up, serving %s", engine.url, ", ".join(engine.models))
        engine.up = True
        engine.last_error = None
        self._notify(engine)

    async def refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(e) for e in self.engines))

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.refresh_all()
            except Exception:  # the poller must survive anything an engine answers
                log.exception("engine poll failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    def _notify(self, engine: Engine) -> None:
        for listener in self._listeners:
            listener(engine)


def retry_after_s(engines: list[Engine], default: int = 5, most: int = 60) -> int:
    """``Retry-After`` for a 503 while engines are down: when a supervised engine is restarting, the
    seconds its last start took minus the time already spent (so clients that honour the header, like
    the openai SDK, come back when it is likely up instead of adding load while it starts)."""
    hints = [h for e in engines if e.supervisor is not None and (h := e.supervisor.ready_in_s()) is not None]
    if not hints:
        return default
    return max(1, min(most, round(min(hints))))


def _served_model(item: dict[str, object]) -> ServedModel | None:
    model_id = item.get("id")
    if not isinstance(model_id, str):
        return None
    created = item.get("created")
    parent = item.get("parent")
    root = item.get("root")
    max_len = item.get("max_model_len")
    return ServedModel(
        id=model_id,
        created=created if isinstance(created, int) else int(time.time()),
        parent=parent if isinstance(parent, str) else None,
        root=root if isinstance(root, str) else None,
        max_model_len=max_len if isinstance(max_len, int) else None,
    )
