"""The model catalog: the one answer to "what is model X for this caller", and the way to call it.

Kinds of model names:
- base models and ``--adapter`` adapters: what the engines serve and the adapter registry holds;
- names the gateway defines per workspace (trained task models ``task-<id>[-vN]``, fine-tuned models): each
  family is a ``ModelKind`` that maps its names to a registered adapter for one workspace and says which of
  its cards a workspace may see. Other workspaces get 404, the same answer as for an unknown name.

``resolve`` turns a request's ``model`` into a ``Target``: the engine to send to (for an adapter, one serving
its base with the adapter loaded, preferring a replica that already has it) and the name the engine knows.
``call`` sends through a target in the same way for whole answers and streams: a transport failure marks the
engine down, and an engine that answers "not found" for an adapter it had (it restarted between two polls)
gets the adapter loaded again and the call is retried once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from adapters.errors import EngineRejected, EngineUnavailable, UnknownModel
from adapters.pool import Engine, EnginePool, ServedModel
from adapters.registry import AdapterError, AdapterRegistry, parse_adapter_flag, read_adapter_config
from gateway.errors import PermissionDeniedError
from gateway.openai_api.protocol import ModelCard, ModelList

OWNER = "vlm-gateway"
T = TypeVar("T")
Workspace = uuid.UUID | str | None


class ModelKind(Protocol):
    """A family of model names the gateway defines on top of registered adapters, visible per workspace."""

    def claims(self, model: str) -> bool:
        """Whether ``model`` is one of this family's names (its per-version adapter names included)."""
        ...

    async def adapter_for(self, model: str, workspace: Workspace) -> str:
        """The registered adapter that serves ``model`` for ``workspace``; ``ModelNotFoundError`` if none."""
        ...

    async def visible(self, cards: list[ModelCard], workspace: Workspace) -> list[ModelCard]:
        """``cards`` as ``workspace`` sees them: other workspaces' names removed, aliases added."""
        ...


@runtime_checkable
class DeletableKind(Protocol):
    """A ``ModelKind`` whose names a workspace may delete (``DELETE /v1/models/{model}``)."""

    async def delete(self, model: str, workspace: uuid.UUID) -> None:
        """Stop serving ``model`` for good; ``ModelNotFoundError`` if the workspace has no such model."""
        ...


@dataclass(frozen=True)
class Target:
    """Where a request goes: the engine and the model name it knows (a base model or an adapter)."""

    engine: Engine
    model: str


def card(model: ServedModel) -> ModelCard:
    return ModelCard(
        id=model.id, created=model.created, owned_by=OWNER, root=model.root, parent=model.parent,
        max_model_len=model.max_model_len,
    )  # fmt: skip


class ModelCatalog:
    def __init__(self, pool: EnginePool, registry: AdapterRegistry, kinds: Sequence[ModelKind] = ()) -> None:
        self.pool = pool
        self.registry = registry
        self.kinds = list(kinds)

    # -- resolving and calling ----------------------------------------------------------------------------
    async def resolve(self, model: str, workspace: Workspace) -> Target:
        """The target for ``model`` as ``workspace`` names it (404 unknown, 503 no engine ready)."""
        name = model
        for kind in self.kinds:
            if kind.claims(model):
                name = await kind.adapter_for(model, workspace)
                break
        engine = await self.registry.engine_for(name)
        return Target(engine or self.pool.route(name), name)

    async def call(self, target: Target, send: Callable[[Engine], Awaitable[T]]) -> T:
        """``send(engine)``, retried once after re-loading an adapter the engine has lost; an adapter is not
        evicted while its request is being sent (``AdapterRegistry.using``). A base model has neither."""
        if self.registry.get(target.model) is None:
            return await self._guarded(target.engine, send)
        async with self.registry.using(target.engine, target.model):
            try:
                return await self._guarded(target.engine, send)
            except EngineRejected as exc:
                if exc.status != 404 or self.registry.get(target.model) is None:
                    raise
            self.registry.forget(target.engine, target.model)  # evicted (or lost) after it was resolved
            await self.registry.ensure_loaded(target.engine, target.model)
            return await self._guarded(target.engine, send)

    async def _guarded(self, engine: Engine, send: Callable[[Engine], Awaitable[T]]) -> T:
        try:
            return await send(engine)
        except EngineUnavailable as exc:
            self.engine_failed(engine, exc.message)
            raise

    def engine_failed(self, engine: Engine, reason: str) -> None:
        """A call found the engine unreachable (also mid-stream): route around it until it is back."""
        self.pool.mark_down(engine, reason)

    # -- listing ------------------------------------------------------------------------------------------
    def served(self) -> list[ServedModel]:
        """What engines serve, plus registered adapters not loaded anywhere yet (they load on first use)."""
        models = self.pool.served_models()
        seen = {m.id for m in models}
        return models + [a for a in self.registry.served_models() if a.id not in seen]

    async def list_for(self, workspace: Workspace) -> ModelList:
        cards = [card(m) for m in self.served()]
        for kind in self.kinds:
            cards = await kind.visible(cards, workspace)
        return ModelList(data=cards)

    async def get_for(self, model_id: str, workspace: Workspace) -> ModelCard:
        for model in (await self.list_for(workspace)).data:
            if model.id == model_id:
                return model
        raise UnknownModel(model_id)

    async def delete_for(self, model: str, workspace: uuid.UUID) -> None:
        """Delete a model the workspace owns (a kind's name that can be deleted); others: 403."""
        for kind in self.kinds:
            if kind.claims(model) and isinstance(kind, DeletableKind):
                await kind.delete(model, workspace)
                return
        raise PermissionDeniedError(f"`{model}` cannot be deleted; only fine-tuned models (`ft:...`) can.")

    # -- static adapters ----------------------------------------------------------------------------------
    def register_adapters(self, flags: Sequence[str], say: Callable[[str], None]) -> None:
        """Register the ``--adapter NAME=DIR`` adapters. The base is the adapter's ``base_model_name_or_path``
        when an engine serves that name, else the one base model the engines serve (adapters trained
        elsewhere name their Hub id, which the engine may serve under another name)."""
        bases = {e.expected_model for e in self.pool.engines if e.expected_model}
        bases |= {m.id for e in self.pool.engines for m in e.models.values() if m.parent is None}
        for flag in flags:
            name, path = parse_adapter_flag(flag)
            named = read_adapter_config(path).get("base_model_name_or_path")
            base = named if named in bases else (next(iter(bases)) if len(bases) == 1 else None)
            if base is None:
                serving = f"serving: {sorted(bases)}"
                raise AdapterError(
                    f"adapter `{name}`: its base model `{named}` is not served here ({serving})"
                )
            adapter = self.registry.register(name, path, base_model=str(base))
            say(f"adapter `{name}` registered for `{adapter.base_model}` from {adapter.path}")
