"""Recognition tasks and labels of a workspace: create, list (paginated, searched), change, delete, connect.

A recognition task is stored as a platform task (``db.Task``, the same id) plus its ``RecognitionTask`` row
(type) and label links, so that training, its jobs, events and model versions are the VLM training path's
own (``gateway.recognition.training``). Its ``production_version`` is -1 until a training succeeds, as in
Ximilar's API. Labels live in the workspace on their own and are connected to any number of tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tortoise.transactions import in_transaction

from gateway.db import models as db
from gateway.db.render import from_row
from gateway.errors import FieldsInvalidError
from gateway.platform_api.common import Page, PageRequest, counts_by, get_in_workspace, paginate
from gateway.platform_api.tasks import TaskService
from gateway.recognition import schemas as wire

NOT_TRAINED = -1


class RecognitionEntities:
    def __init__(self, tasks: TaskService) -> None:
        self.tasks = tasks  # deletes the platform task with its jobs, versions and adapter files

    # ---- tasks
    async def task_listing(self, ws: uuid.UUID, page: PageRequest, search: str | None) -> Page:
        query = db.RecognitionTask.filter(workspace_id=ws)
        if search:
            query = query.filter(task__name__icontains=search)
        return await paginate(query.order_by("-created", "id"), page, self.render_tasks)

    async def create_task(self, ws: uuid.UUID, body: wire.RecognitionTaskCreate) -> wire.RecognitionTask:
        async with in_transaction():
            task = await db.Task.create(
                workspace_id=ws, name=body.name, description=body.description, max_tokens=1, auto_deploy=True
            )
            row = await db.RecognitionTask.create(id=task.id, task=task, workspace_id=ws, type=body.type)
        return (await self.render_tasks([row]))[0]

    async def get_task(self, ws: uuid.UUID, task_id: uuid.UUID) -> wire.RecognitionTask:
        return (await self.render_tasks([await self.task_row(ws, task_id)]))[0]

    async def update_task(
        self, ws: uuid.UUID, task_id: uuid.UUID, body: wire.RecognitionTaskUpdate
    ) -> wire.RecognitionTask:
        row = await self.task_row(ws, task_id)
        changes = {k: v for k, v in (("name", body.name), ("description", body.description)) if v is not None}
        if changes:
            await db.Task.filter(id=row.task_id).update(**changes)
        return await self.get_task(ws, task_id)

    async def delete_task(self, ws: uuid.UUID, task_id: uuid.UUID) -> None:
        """Delete the task with its versions and adapters (refused while it trains); labels stay."""
        row = await self.task_row(ws, task_id)
        await self.tasks.delete(ws, row.task_id)  # the recognition row and label links cascade

    async def connect_label(
        self, ws: uuid.UUID, task_id: uuid.UUID, ref: wire.LabelRef
    ) -> wire.RecognitionTask:
        row = await self.task_row(ws, task_id)
        label = await self.label_by_ref(ws, ref)
        await db.RecognitionTaskLabel.get_or_create(task_id=row.id, label_id=label.id)
        return await self.get_task(ws, task_id)

    async def disconnect_label(
        self, ws: uuid.UUID, task_id: uuid.UUID, ref: wire.LabelRef
    ) -> wire.RecognitionTask:
        row = await self.task_row(ws, task_id)
        label = await self.label_by_ref(ws, ref)
        removed = await db.RecognitionTaskLabel.filter(task_id=row.id, label_id=label.id).delete()
        if not removed:
            raise FieldsInvalidError({"label_id": f"label {label.id} is not connected to task {task_id}"})
        return await self.get_task(ws, task_id)

    @staticmethod
    async def task_row(ws: uuid.UUID, task_id: uuid.UUID) -> db.RecognitionTask:
        return await get_in_workspace(db.RecognitionTask, task_id, ws, "Task", param="task_id")

    @staticmethod
    async def render_tasks(rows: Sequence[db.RecognitionTask]) -> list[wire.RecognitionTask]:
        ids = [r.id for r in rows]
        tasks = {t.id: t for t in await db.Task.filter(id__in=ids)}
        links = await db.RecognitionTaskLabel.filter(task_id__in=ids).prefetch_related("label").order_by("id")
        labels: dict[uuid.UUID, list[wire.LabelBrief]] = {}
        for link in links:
            labels.setdefault(link.task_id, []).append(
                wire.LabelBrief(id=link.label.id, name=link.label.name)
            )
        jobs = (
            await db.TrainingJob.filter(task_id__in=ids).order_by("created").values_list("task_id", "status")
        )
        last_status = {task: status for task, status in jobs}
        return [
            wire.RecognitionTask(
                id=r.id,
                name=tasks[r.id].name,
                description=tasks[r.id].description,
                type=r.type,
                production_version=tasks[r.id].production_version or NOT_TRAINED,
                last_train_status=last_status.get(r.id),
                labels=labels.get(r.id, []),
                created=r.created,
                workspace=r.workspace_id,
            )
            for r in rows
        ]

    # ---- labels
    async def label_listing(
        self, ws: uuid.UUID, page: PageRequest, task: uuid.UUID | None, search: str | None
    ) -> Page:
        query = db.RecognitionLabel.filter(workspace_id=ws)
        if task is not None:
            await self.task_row(ws, task)
            query = query.filter(task_links__task_id=task)
        if search:
            query = query.filter(name__icontains=search.strip('"'))
        return await paginate(query.order_by("name", "id"), page, render_labels)

    async def create_label(self, ws: uuid.UUID, body: wire.LabelCreate) -> wire.Label:
        row = await db.RecognitionLabel.create(workspace_id=ws, name=body.name, description=body.description)
        return (await render_labels([row]))[0]

    async def get_label(self, ws: uuid.UUID, label_id: uuid.UUID) -> wire.Label:
        return (await render_labels([await label_row(ws, label_id)]))[0]

    async def update_label(self, ws: uuid.UUID, label_id: uuid.UUID, body: wire.LabelUpdate) -> wire.Label:
        row = await label_row(ws, label_id)
        changes = {k: v for k, v in (("name", body.name), ("description", body.description)) if v is not None}
        if changes:
            await db.RecognitionLabel.filter(id=row.id).update(**changes)
        return await self.get_label(ws, label_id)

    async def delete_label(self, ws: uuid.UUID, label_id: uuid.UUID) -> None:
        """Delete the label; its connections to tasks and images go with it (trained versions keep theirs)."""
        row = await label_row(ws, label_id)
        await row.delete()

    @staticmethod
    async def label_by_ref(ws: uuid.UUID, ref: wire.LabelRef) -> db.RecognitionLabel:
        """The label a body names by ``label_id``, or by exact ``name`` (Ximilar's page shows both)."""
        if ref.label_id is not None:
            row = await db.RecognitionLabel.filter(id=ref.label_id, workspace_id=ws).first()
            if row is None:
                raise FieldsInvalidError({"label_id": f"label {ref.label_id} not found"})
            return row
        if not ref.name:
            raise FieldsInvalidError({"label_id": "give `label_id` (or the label's exact `name`)"})
        rows = await db.RecognitionLabel.filter(name=ref.name, workspace_id=ws).limit(2)
        if len(rows) != 1:
            problem = "no label has" if not rows else "several labels have"
            raise FieldsInvalidError({"name": f"{problem} the name `{ref.name}`; give `label_id`"})
        return rows[0]


async def label_row(ws: uuid.UUID, label_id: uuid.UUID) -> db.RecognitionLabel:
    return await get_in_workspace(db.RecognitionLabel, label_id, ws, "Label")


async def render_labels(rows: Sequence[db.RecognitionLabel]) -> list[wire.Label]:
    ids = [r.id for r in rows]
    images = await counts_by(db.TrainingImageLabel, "label_id", ids)
    tasks = await counts_by(db.RecognitionTaskLabel, "label_id", ids)
    return [
        from_row(wire.Label, r, images_count=images.get(r.id, 0), tasks_count=tasks.get(r.id, 0))
        for r in rows
    ]
