"""Trained task models as a model kind: names, workspace checks, and registration with the adapter registry.

Every trained version is an adapter registered as ``task-<task id>-v<N>``; ``task-<task id>`` names the
task's production version and is resolved on each request, so moving ``production_version`` takes effect at
once. Both names work only for keys of the task's workspace: for anyone else the model does not exist (404,
the same answer as for an unknown name). Versions are registered at start-up and when a training publishes
them; the registry loads an adapter into vLLM on first use and unloads the least recently used one.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from adapters.registry import AdapterError, AdapterRegistry
from gateway.catalog.catalog import Workspace
from gateway.catalog.names import parse_model_name, task_model_name, version_model_name
from gateway.db import models as db
from gateway.errors import ModelNotFoundError
from gateway.openai_api.protocol import ModelCard

log = logging.getLogger("vlmgw.catalog")


class TaskModels:
    """``ModelKind`` of trained task models; ``base`` is the served base model they were trained on."""

    def __init__(self, registry: AdapterRegistry, base: str) -> None:
        self.registry = registry
        self.base = base

    def claims(self, model: str) -> bool:
        return parse_model_name(model) is not None

    def register(self, task_id: uuid.UUID, version: int, adapter_dir: str | Path) -> str:
        name = version_model_name(task_id, version)
        self.registry.register(name, adapter_dir, base_model=self.base)
        return name

    def unregister(self, task_id: uuid.UUID, version: int) -> None:
        self.registry.unregister(version_model_name(task_id, version))

    async def register_all(self) -> int:
        """Register every stored version whose adapter files exist (at start-up)."""
        count = 0
        for row in await db.ModelVersion.all():
            if not Path(row.adapter_dir).is_dir():
                log.warning(
                    "model %s v%s: adapter files missing at %s", row.task_id, row.version, row.adapter_dir
                )
                continue
            try:
                self.register(row.task_id, row.version, row.adapter_dir)
                count += 1
            except AdapterError as exc:
                log.warning("model %s v%s not served: %s", row.task_id, row.version, exc)
        return count

    async def adapter_for(self, model: str, workspace: Workspace) -> str:
        """The adapter name that serves ``model`` (a version, or the task's production version)."""
        parsed = parse_model_name(model)
        if parsed is None:
            raise ModelNotFoundError(model)
        task_id, version = parsed
        task = await db.Task.filter(id=task_id).first()
        if task is None or (workspace is not None and str(task.workspace_id) != str(workspace)):
            raise ModelNotFoundError(model)
        if version is None:
            version = task.production_version
            if not version:
                raise ModelNotFoundError(model)
        name = version_model_name(task_id, version)
        if self.registry.get(name) is None:
            row = await db.ModelVersion.filter(task_id=task_id, version=version).first()
            if row is None or not Path(row.adapter_dir).is_dir():
                raise ModelNotFoundError(model)
            self.register(task_id, version, row.adapter_dir)
        return name

    async def visible(self, cards: list[ModelCard], workspace: Workspace) -> list[ModelCard]:
        """The cards as one workspace sees them: its own task versions, plus a card per task alias."""
        ours = {str(t) for t in await db.Task.filter(workspace_id=workspace).values_list("id", flat=True)}
        kept: list[ModelCard] = []
        for card in cards:
            parsed = parse_model_name(card.id)
            if parsed is None or str(parsed[0]) in ours:
                kept.append(card)
        for task in await db.Task.filter(workspace_id=workspace, production_version__gt=0):
            target = next(
                (c for c in kept if c.id == version_model_name(task.id, task.production_version)), None
            )
            if target is not None:
                alias = ModelCard(
                    id=task_model_name(task.id), created=target.created, owned_by=target.owned_by,
                    root=target.root, parent=target.parent, max_model_len=target.max_model_len,
                )  # fmt: skip
                kept.append(alias)
        return kept
