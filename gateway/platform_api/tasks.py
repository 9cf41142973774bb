"""Tasks and datasets: create, list, read, update, delete, and attaching datasets to tasks.

A task owns its dataset links (deleting a task detaches its datasets). A dataset owns its variables and
samples (deleting it deletes them and their values); a dataset that a task uses cannot be deleted (409)
until it is removed from the task.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from tortoise.transactions import in_transaction

from gateway.db import models as db
from gateway.db.render import from_row
from gateway.errors import ConflictError, FieldsInvalidError
from gateway.platform_api import schemas as wire
from gateway.platform_api.common import (
    EntityService,
    Page,
    PageRequest,
    changes,
    counts_by,
    paginate,
    referenced,
    require_fields,
    where,
)
from gateway.platform_api.variable_rules import definition, template_problems, template_variables


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def touch_dataset(dataset_id: uuid.UUID) -> None:
    """Mark a dataset changed: its ``version`` becomes today's date (what a training run records)."""
    await db.Dataset.filter(id=dataset_id).update(version=today(), updated=datetime.now(UTC))


# Called before a task is deleted; may refuse (raise), returns what to run once the rows are gone.
TaskDeleteHook = Callable[[db.Task], Awaitable[Callable[[], Awaitable[None]]]]


class TaskService(EntityService[db.Task, wire.Task]):
    model, what = db.Task, "Task"

    def __init__(self, on_delete: TaskDeleteHook | None = None) -> None:
        """``on_delete``: training's check and clean-up of a task's jobs and adapter files."""
        self.on_delete = on_delete

    async def listing(self, ws: uuid.UUID, page: PageRequest, search: str | None) -> Page:
        query = db.Task.filter(workspace_id=ws).order_by("-created", "id")
        return await paginate(where(query, name__icontains=search), page, self.render)

    async def create(self, ws: uuid.UUID, body: wire.TaskCreate) -> wire.Task:
        datasets = [
            await referenced(db.Dataset, dataset_id, ws, f"datasets[{i}]", "Dataset")
            for i, dataset_id in enumerate(body.datasets)
        ]
        values = msgspec.structs.asdict(body)
        del values["datasets"], values["workspace"]
        async with in_transaction():
            task = await db.Task.create(workspace_id=ws, **values)
            for dataset in dict.fromkeys(datasets):
                await db.TaskDataset.create(task=task, dataset=dataset)
        return await self.get(ws, task.id)

    async def change(self, task: db.Task, values: dict[str, Any], *, put: bool) -> None:
        version = values.get("production_version")
        if version and not await db.ModelVersion.filter(task=task, version=version).exists():
            raise FieldsInvalidError({"production_version": f"the task has no trained version {version}"})
        if values:
            await task.update_from_dict(values).save()

    async def delete(self, ws: uuid.UUID, task_id: uuid.UUID) -> None:
        task = await self.row(ws, task_id)
        cleanup = await self.on_delete(task) if self.on_delete is not None else None
        await task.delete()  # dataset links, training jobs and model versions cascade
        if cleanup is not None:
            await cleanup()

    async def add_dataset(self, ws: uuid.UUID, task_id: uuid.UUID, body: wire.DatasetRef) -> wire.Task:
        task = await self.row(ws, task_id)
        dataset = await referenced(db.Dataset, body.dataset_id, ws, "dataset_id", "Dataset")
        await db.TaskDataset.get_or_create(task=task, dataset=dataset)
        return await self.get(ws, task_id)

    async def remove_dataset(self, ws: uuid.UUID, task_id: uuid.UUID, body: wire.DatasetRef) -> wire.Task:
        task = await self.row(ws, task_id)
        dataset = await referenced(db.Dataset, body.dataset_id, ws, "dataset_id", "Dataset")
        removed = await db.TaskDataset.filter(task=task, dataset=dataset).delete()
        if not removed:
            raise FieldsInvalidError({"dataset_id": f"dataset {dataset.id} is not attached to this task"})
        return await self.get(ws, task_id)

    @staticmethod
    async def render(tasks: Sequence[db.Task]) -> list[wire.Task]:
        links: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        rows = await db.TaskDataset.filter(task_id__in=[t.id for t in tasks]).order_by("id")
        for link in rows:
            links[link.task_id].append(link.dataset_id)
        return [from_row(wire.Task, t, datasets=links[t.id], dataset_count=len(links[t.id])) for t in tasks]


class DatasetService(EntityService[db.Dataset, wire.Dataset]):
    model, what = db.Dataset, "Dataset"

    async def listing(self, ws: uuid.UUID, page: PageRequest, search: str | None) -> Page:
        query = db.Dataset.filter(workspace_id=ws).order_by("-created", "id")
        return await paginate(where(query, name__icontains=search), page, self.render)

    async def create(self, ws: uuid.UUID, body: wire.DatasetCreate) -> wire.Dataset:
        if problems := template_problems(body.result_template, [], allow_missing=True):
            raise FieldsInvalidError(problems)
        values = msgspec.structs.asdict(body)
        del values["workspace"]
        values["version"] = body.version or today()
        dataset = await db.Dataset.create(workspace_id=ws, **values)
        return await self.get(ws, dataset.id)

    async def update(  # the base's, with the template checked before the change is stored
        self, ws: uuid.UUID, dataset_id: uuid.UUID, body: msgspec.Struct, *, put: bool
    ) -> wire.Dataset:
        dataset = await self.row(ws, dataset_id)
        values = changes(body)
        if put:
            require_fields(values, ("name",))
        if "result_template" in values:
            variables = [definition(v) for v in await db.Variable.filter(dataset=dataset)]
            if problems := template_problems(values["result_template"], variables, allow_missing=True):
                raise FieldsInvalidError(problems)
        if values:
            values.setdefault("version", today())
            await dataset.update_from_dict(values).save()
        return await self.get(ws, dataset_id)

    async def delete(self, ws: uuid.UUID, dataset_id: uuid.UUID) -> None:
        """Delete a dataset with its variables, samples and values; refused while a task uses it."""
        dataset = await self.row(ws, dataset_id)
        tasks = await db.TaskDataset.filter(dataset=dataset).values_list("task_id", flat=True)
        if tasks:
            names = ", ".join(str(t) for t in tasks)
            raise ConflictError(
                f"Dataset {dataset_id} is used by task(s) {names}; remove it from them first "
                "(POST /vlm/v2/task/TASK_ID/remove-dataset/).",
                code="dataset_in_use",
            )
        async with in_transaction():
            await db.VariableValue.filter(sample__dataset_id=dataset.id).delete()
            await db.SampleImage.filter(sample__dataset_id=dataset.id).delete()
            await db.Sample.filter(dataset_id=dataset.id).delete()
            await db.Variable.filter(dataset_id=dataset.id).delete()
            await db.Dataset.filter(id=dataset.id).delete()

    @staticmethod
    async def render(datasets: Sequence[db.Dataset]) -> list[wire.Dataset]:
        ids = [d.id for d in datasets]
        samples = await counts_by(db.Sample, "dataset_id", ids)
        variables = await counts_by(db.Variable, "dataset_id", ids)
        defined: dict[uuid.UUID, set[str]] = {}
        for dataset_id, name in await db.Variable.filter(dataset_id__in=ids).values_list(
            "dataset_id", "name"
        ):
            defined.setdefault(dataset_id, set()).add(name)
        return [
            from_row(
                wire.Dataset,
                d,
                samples_count=samples.get(d.id, 0),
                variables_count=variables.get(d.id, 0),
                missing_variables=sorted(template_variables(d.result_template) - defined.get(d.id, set())),
            )
            for d in datasets
        ]
