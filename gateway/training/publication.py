"""What publishing a trained version means on the serving side: register it as a task model, then measure
it (and the base model and the previous version) on the held-out samples through the chat service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.catalog import TaskModels
from gateway.catalog.names import version_model_name
from gateway.db import models as db
from gateway.training.evaluation import Complete, compare_versions, read_eval_plan


class VersionPublisher:
    def __init__(self, models: TaskModels, complete: Complete) -> None:
        self.models = models
        self.complete = complete

    async def publish(self, task: db.Task, version: int, adapter_dir: Path, job_dir: Path) -> dict[str, Any]:
        """Register version ``version`` and return its metrics next to the base's and the previous one's."""
        name = self.models.register(task.id, version, adapter_dir)
        previous = await db.ModelVersion.filter(task=task, version__lt=version).order_by("-version").first()
        previous_name = version_model_name(task.id, previous.version) if previous is not None else None
        plan = read_eval_plan(job_dir)
        return await compare_versions(self.complete, plan, name, self.models.base, previous_name)

    async def unpublish(self, task: db.Task, version: int) -> None:
        self.models.unregister(task.id, version)
