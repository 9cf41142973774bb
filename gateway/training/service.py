"""Training of a task's model: start a job from the task's samples, follow it, and publish the new version.

Flow: ``start`` checks the data (every bad sample listed in one 400), refuses a second active job for the
task (409) and hands the prepared examples to ``start_prepared``, the one entry point every API family's
training uses (the recognition API's task jobs and the fine-tuning API's task-less jobs too): it writes the
job's spec (examples, held-out examples, base model, hyper-parameters) and starts the trainer through the
``JobManager`` (which owns the job through its lease in the database, so any gateway may finish it).
When the trainer succeeds, ``_publish`` copies the adapter in the model store to
``adapters/<task>/v<N>/`` as version N+1, registers it with the engine's adapter registry, evaluates it
(and the base model and the previous version) on the held-out samples, and moves ``production_version``
when the task has ``auto_deploy``. If any of that fails, the version is removed again: a failed job
registers nothing. ``ModelVersion.adapter_dir`` is the adapter's store key (older rows: a local path).

Served names: ``task-<task id>-v<N>`` for a version, ``task-<task id>`` for the task's production version.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec
from tortoise.expressions import Q
from tortoise.functions import Max

from gateway.catalog.names import task_model_name, version_model_name
from gateway.db import models as db
from gateway.errors import ConflictError, FieldsInvalidError, NotFoundError
from gateway.platform_api.common import Page, PageRequest, get_in_workspace, paginate
from gateway.training import schemas as wire
from gateway.training.backends import LaunchRun
from gateway.training.data import collect_task_data, example_payloads
from gateway.training.evaluation import eval_plan
from gateway.training.jobs import GroupBusy, JobManager, JobStatus
from gateway.training.runner import JobResult, TrainingEvent
from models_store.store import Store, join

log = logging.getLogger("vlmgw.training")

ACTIVE_STATUSES = ("queued", "running", "interrupted")
MAX_EVAL_TOKENS = 512
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class TrainRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Optional body of POST /vlm/v2/task/{id}/train/."""

    hyperparameters: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 0  # numpy's seed range
    workspace: uuid.UUID | None = None


@dataclass(frozen=True, kw_only=True)
class PreparedJob:
    """What a training job trains on, built by the API family that starts it: the examples
    (``finetune.spec.Example`` payloads, image paths relative to the job's folder), the hyper-parameters and
    seed, and ``files`` written to the job's folder for its publisher (e.g. an evaluation plan)."""

    train: list[dict[str, Any]]
    held_out: list[dict[str, Any]]
    hyperparameters: dict[str, Any]
    seed: int = 0
    files: dict[str, bytes] = field(default_factory=dict)


class Publisher(Protocol):
    """The serving side of a new version (``gateway.training.publication.VersionPublisher``)."""

    async def publish(self, task: db.Task, version: int, adapter_dir: Path, job_dir: Path) -> dict[str, Any]:
        """Serve the version and return its metrics (raise to refuse it)."""
        ...

    async def unpublish(self, task: db.Task, version: int) -> None: ...


class JobPublisher(Protocol):
    """The serving side of jobs that belong to no task (e.g. the OpenAI fine-tuning API's jobs)."""

    def claims_job(self, job: db.TrainingJob) -> Awaitable[bool]:
        """Whether this publisher owns the (task-less) job."""
        ...

    async def publish(self, job: db.TrainingJob, result: JobResult, output_key: str) -> None:
        """Serve the job's output (``output_key``: its output folder in the store); raise to fail it."""
        ...


class DbJobStore:
    """``JobStore`` on the platform database: events as rows, progress and status on the job row."""

    async def record_event(self, job_id: str, event: TrainingEvent) -> None:
        known = {k: v for k, v in msgspec.to_builtins(event).items() if k != "data"}
        data = {**event.data, **known}  # the trainer's line as it wrote it, flat
        await db.TrainingEvent.create(
            job_id=uuid.UUID(job_id),
            level="error" if event.event == "error" else "info",
            type="metrics" if event.event == "step" else "message",
            message=describe(event),
            data=data,
        )
        if event.event == "step" and event.step is not None:
            await db.TrainingJob.filter(id=uuid.UUID(job_id)).update(
                step=event.step, total_steps=event.total_steps, loss=event.loss, eta_s=event.eta_s
            )
        elif event.event == "start" and event.total_steps is not None:
            await db.TrainingJob.filter(id=uuid.UUID(job_id)).update(total_steps=event.total_steps)

    async def set_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> None:
        now = dt.datetime.now(dt.UTC)
        changes: dict[str, Any] = {"status": status, "error": error}
        if status == "running":
            changes["started"] = now
        if status in FINAL_STATUSES:
            changes["finished"] = now
            changes["eta_s"] = None
        await db.TrainingJob.filter(id=uuid.UUID(job_id)).update(**changes)

    async def status(self, job_id: str) -> JobStatus | None:
        job = await db.TrainingJob.filter(id=uuid.UUID(job_id)).first()
        return job.status if job is not None else None  # type: ignore[return-value]

    async def active_jobs(self) -> list[tuple[str, str]]:
        """Unfinished jobs with their lease group (one active job per task)."""
        rows = await db.TrainingJob.filter(status__in=ACTIVE_STATUSES).values_list("id", "task_id")
        return [(str(job), job_group(job, task)) for job, task in rows]


def task_group(task_id: uuid.UUID | str) -> str:
    """The lease group of a task's jobs: the database allows one active job per group."""
    return f"task:{task_id}"


def job_group(job_id: uuid.UUID | str, task_id: uuid.UUID | str | None) -> str:
    """A job's lease group: its task's, or its own for a job without a task."""
    return task_group(task_id) if task_id is not None else f"job:{job_id}"


def describe(event: TrainingEvent) -> str:
    if event.event == "step":
        valid = event.data.get("valid_loss")
        text = f"Step {event.step}/{event.total_steps}: training loss={event.loss:.4f}"
        return text + (f", validation loss={valid:.4f}" if isinstance(valid, int | float) else "")
    if event.event == "error":
        return event.message or "training failed"
    if event.event == "done":
        return "Training finished"
    if event.event == "start":
        return f"Training started ({event.total_steps} steps)"
    return event.message or event.event.capitalize()


class TrainingService:
    def __init__(
        self,
        *,
        store: Store,
        leases: Any,
        launch: LaunchRun,
        image_root: Any,
        base_model_dir: Callable[[str], str],
        served_base_name: str,
        publisher: Publisher,
        say: Callable[[str], None] = print,
        max_jobs: int = 0,
        job_publishers: Sequence[JobPublisher] = (),
    ) -> None:
        self.store = store
        self.job_publishers = list(job_publishers)
        self.images = image_root
        self.base_model_dir = base_model_dir
        self.served_base_name = served_base_name
        self.publisher = publisher
        self.jobs = JobManager(store, DbJobStore(), leases, launch, self._publish, say=say, max_jobs=max_jobs)
        self._task_locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._background: asyncio.Task[None] | None = None

    async def start(self, ws: uuid.UUID, task_id: uuid.UUID, body: TrainRequest) -> db.TrainingJob:
        """Check the task's data and start a job; 400 listing every bad sample, 409 if one is active."""
        task = await get_in_workspace(db.Task, task_id, ws, "Task")
        await self._refuse_if_active(task)  # before the data is read: a busy task is a 409, not a 400
        self._base_model_dir(task)
        data = await collect_task_data(task, self.images, seed=body.seed)
        if data.problems:
            count = len(data.problems)
            message = f"The task's data cannot be trained on ({count} problems)"
            raise FieldsInvalidError(data.problems, message=message)
        plan = eval_plan(data, max_tokens=min(task.max_tokens, MAX_EVAL_TOKENS))
        prepared = PreparedJob(
            train=example_payloads(data.train), held_out=example_payloads(data.held_out), seed=body.seed,
            hyperparameters=body.hyperparameters, files={"eval.json": msgspec.json.encode(plan)},
        )  # fmt: skip
        return await self.start_prepared(task, prepared)

    async def start_prepared(self, owner: db.Task | uuid.UUID, prepared: PreparedJob) -> db.TrainingJob:
        """The one way a training job starts: lease, spec, trainer, events, checkpoints, resume and take-over.

        ``owner`` is the task the job trains (a new ``TrainingJob`` row; 409 while the task has an active
        job; the result becomes the task's next version), or the id of a task-less job whose row (status
        ``queued``) the calling API family created (a ``JobPublisher`` that claims it serves the result).
        """
        if isinstance(owner, uuid.UUID):
            return await self._launch(None, owner, prepared)
        async with self._task_locks.setdefault(owner.id, asyncio.Lock()):
            await self._refuse_if_active(owner)
            return await self._launch(owner, uuid.uuid4(), prepared)

    async def _launch(self, task: db.Task | None, job_id: uuid.UUID, prepared: PreparedJob) -> db.TrainingJob:
        """Reserve the job's lease, create a task job's row, write its files and spec, start the trainer."""
        spec: dict[str, Any] = {
            "base_model": self._base_model_dir(task),
            "served_base_name": self.served_base_name,
            "output_dir": "output",
            "examples": prepared.train,
            "held_out": prepared.held_out,
            "hyperparameters": {"seed": prepared.seed, **prepared.hyperparameters},
        }
        await self._reserve(task, job_id)
        if task is not None:
            spec["adapter_name"] = task_model_name(task.id)
            await db.TrainingJob.create(
                id=job_id, task=task, status="queued", train_samples=len(prepared.train),
                test_samples=len(prepared.held_out), hyperparameters=prepared.hyperparameters,
            )  # fmt: skip
        try:
            for name, content in prepared.files.items():
                await self.jobs.write_file(str(job_id), name, content)
            await self.jobs.start(str(job_id), msgspec.json.encode(spec))
        except Exception as exc:
            await self.jobs.store.set_status(str(job_id), "failed", error=f"could not start: {exc}")
            await self.jobs.leases.finish(str(job_id))
            raise
        return await db.TrainingJob.get(id=job_id)

    async def _reserve(self, task: db.Task | None, job_id: uuid.UUID) -> None:
        """The job's lease for this gateway; the database refuses a second active job of the task (409)."""
        try:
            await self.jobs.reserve(str(job_id), job_group(job_id, task.id if task else None))
        except GroupBusy:
            if task is None:
                raise ConflictError(f"Training job {job_id} is active already.") from None
            await self._refuse_if_active(task)  # names the active job
            raise ConflictError(
                f"Task {task.id} already has an active training job.", code="training_in_progress"
            ) from None

    @staticmethod
    async def _refuse_if_active(task: db.Task) -> None:
        active = await db.TrainingJob.filter(task=task, status__in=ACTIVE_STATUSES).first()
        if active is not None:
            raise ConflictError(
                f"Task {task.id} already has a training job ({active.id}, {active.status}); "
                "cancel it or wait for it to finish.",
                code="training_in_progress",
            )

    def _base_model_dir(self, task: db.Task | None) -> str:
        """The weights a job of the task trains on (a task-less job: the served base model's)."""
        base = (task.base_model if task else None) or self.served_base_name
        if self.served_base_name and base != self.served_base_name:
            trains = self.served_base_name
            raise FieldsInvalidError(
                {"base_model": f"`{base}` is not served here; this gateway trains `{trains}`"}
            )
        return self.base_model_dir(base)

    async def get(self, ws: uuid.UUID, job_id: uuid.UUID) -> db.TrainingJob:
        """A job of the workspace: a task's, or one of the fine-tuning API's."""
        mine = Q(task__workspace_id=ws) | Q(fine_tuning__workspace_id=ws)
        job = await db.TrainingJob.filter(mine, id=job_id).first()
        if job is None:
            raise NotFoundError(f"Training job {job_id} not found.")
        return job

    async def jobs_page(self, ws: uuid.UUID, task_id: uuid.UUID, page: PageRequest) -> Page:
        task = await get_in_workspace(db.Task, task_id, ws, "Task")
        query = db.TrainingJob.filter(task=task).order_by("-created")
        return await paginate(query, page, _render(wire.job_out))

    async def events_page(self, ws: uuid.UUID, job_id: uuid.UUID, page: PageRequest) -> Page:
        job = await self.get(ws, job_id)
        return await paginate(db.TrainingEvent.filter(job=job).order_by("id"), page, _render(wire.event_out))

    async def versions_page(self, ws: uuid.UUID, task_id: uuid.UUID, page: PageRequest) -> Page:
        task = await get_in_workspace(db.Task, task_id, ws, "Task")
        query = db.ModelVersion.filter(task=task).order_by("-version")
        return await paginate(query, page, _render(lambda r: wire.version_out(r, task.production_version)))

    async def version(self, ws: uuid.UUID, model_id: uuid.UUID) -> wire.ModelVersion:
        row = await self._version_in(ws, model_id)
        task = await db.Task.get(id=row.task_id)
        return wire.version_out(row, task.production_version)

    async def loss_curve(self, ws: uuid.UUID, model_id: uuid.UUID) -> Path:
        """The PNG of a version's training loss curve (a local copy when the store is a bucket)."""
        version = await self._version_in(ws, model_id)
        return await asyncio.to_thread(self._loss_curve_png, version)

    @staticmethod
    async def _version_in(ws: uuid.UUID, model_id: uuid.UUID) -> db.ModelVersion:
        row = await db.ModelVersion.filter(id=model_id, task__workspace_id=ws).first()
        if row is None:
            raise NotFoundError(f"Model {model_id} not found.")
        return row

    async def cancel(self, ws: uuid.UUID, job_id: uuid.UUID) -> db.TrainingJob:
        job = await self.get(ws, job_id)
        if job.status in FINAL_STATUSES:
            raise ConflictError(f"Training job {job_id} has already {job.status}.", code="job_finished")
        await self.jobs.cancel_anywhere(str(job.id))
        return await db.TrainingJob.get(id=job.id)

    async def resume(self, ws: uuid.UUID, job_id: uuid.UUID) -> db.TrainingJob:
        """Continue a cancelled or failed job from its last checkpoint (same spec, same data)."""
        job = await self.get(ws, job_id)
        if job.status not in ("cancelled", "failed"):
            raise ConflictError(
                f"Training job {job_id} is {job.status}; only a cancelled or failed job resumes."
            )
        if not await asyncio.to_thread(self.jobs.has_spec, str(job.id)):
            raise ConflictError(f"Training job {job_id} has no spec left to resume from.", code="job_gone")
        if job.task_id is None:
            return await self._resume_taskless(job)
        async with self._task_locks.setdefault(job.task_id, asyncio.Lock()):
            task = await db.Task.get(id=job.task_id)
            await self._refuse_if_active(task)
            try:
                await self.jobs.reopen(str(job.id), task_group(task.id))
            except GroupBusy:
                await self._refuse_if_active(task)
                raise ConflictError(f"Task {task.id} already has an active training job.") from None
            await db.TrainingJob.filter(id=job.id).update(error=None, finished=None)
            await self.jobs.start(str(job.id), b"", resume=True)
        return await db.TrainingJob.get(id=job.id)

    async def _resume_taskless(self, job: db.TrainingJob) -> db.TrainingJob:
        try:
            await self.jobs.reopen(str(job.id), job_group(job.id, None))
        except GroupBusy:
            raise ConflictError(f"Training job {job.id} is active already.") from None
        await db.TrainingJob.filter(id=job.id).update(error=None, finished=None)
        await self.jobs.start(str(job.id), b"", resume=True)
        return await db.TrainingJob.get(id=job.id)

    async def before_task_delete(self, task: db.Task) -> Callable[[], Awaitable[None]]:
        """Refuse while the task trains; afterwards remove its adapters (files and registrations) and jobs."""
        await self._refuse_if_active(task)
        versions = [row.version for row in await db.ModelVersion.filter(task=task)]
        jobs = [str(j) for j in await db.TrainingJob.filter(task=task).values_list("id", flat=True)]

        async def cleanup() -> None:
            for version in versions:
                await self.publisher.unpublish(task, version)
                await asyncio.to_thread(self.store.delete, served_adapter_key(task.id, version))
            await asyncio.to_thread(self.store.delete_prefix, f"adapters/{task.id}")
            for job_id in jobs:
                await self.jobs.delete_files(job_id)

        return cleanup

    def start_background(self) -> None:
        """Heartbeat this gateway's job leases and take over jobs that are free (also its own, after a
        restart); runs until ``close``."""
        self._background = asyncio.create_task(self.jobs.run_forever(), name="training-leases")

    async def close(self) -> None:
        await self.jobs.close()
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)

    def adapter_path(self, adapter_dir: str) -> Path:
        """A version's adapter folder on this machine (from the store; older rows hold a local path)."""
        return local_adapter_path(self.store, adapter_dir)

    def _loss_curve_png(self, version: db.ModelVersion) -> Path:
        key = join(version.adapter_dir.rsplit("/", 1)[0], "loss_curve.png")
        if Path(version.adapter_dir).is_absolute():
            path = Path(version.adapter_dir).parent / "loss_curve.png"
        elif self.store.exists(key):
            path = self.store.materialise(key)
        else:
            raise NotFoundError(f"Model version {version.version} has no loss curve.")
        if not path.exists():
            raise NotFoundError(f"Model version {version.version} has no loss curve.")
        return path

    async def _publish(self, job_id: str, result: JobResult) -> None:
        """Make the trained adapter version N+1 of the task; undo everything if a step fails."""
        job = await db.TrainingJob.get(id=uuid.UUID(job_id)).prefetch_related("task")
        if job.task_id is None:
            return await self._publish_taskless(job, result)
        task: db.Task = job.task  # type: ignore[assignment]  # a task job
        if result.adapter_dir is None:
            raise RuntimeError("the trainer reported no adapter directory")
        adapter_name = Path(result.adapter_dir).name
        output = join(self.jobs.job_key(job_id), "output")
        async with self._task_locks.setdefault(task.id, asyncio.Lock()):
            top = await db.ModelVersion.filter(task=task).annotate(m=Max("version")).values("m")
            version = (top[0]["m"] or 0) + 1 if top else 1
            target = f"adapters/{task.id}/v{version}"
            await asyncio.to_thread(self.store.copy_prefix, output, target, frozenset({"checkpoints"}))
            adapter_key = join(target, adapter_name)
            try:
                served = version_model_name(task.id, version)
                await asyncio.to_thread(self._index_adapter, served, adapter_key)
                adapter = await asyncio.to_thread(self.store.materialise_dir, adapter_key)
                job_dir = await self.jobs.materialise(job_id)
                metrics = await self.publisher.publish(task, version, adapter, job_dir)
                await db.ModelVersion.create(
                    task=task, version=version, base_model=self.served_base_name,
                    adapter_dir=adapter_key, metrics=metrics,
                    hyperparameters=job.hyperparameters, train_samples=job.train_samples,
                    test_samples=job.test_samples, job=job,
                )  # fmt: skip
            except BaseException:
                await self.publisher.unpublish(task, version)
                await asyncio.to_thread(self.store.delete, served_adapter_key(task.id, version))
                await asyncio.to_thread(self.store.delete_prefix, target)
                raise
            job.version = version
            await job.save(update_fields=["version"])
            if task.auto_deploy:
                task.production_version = version
                await task.save(update_fields=["production_version", "updated"])
        await asyncio.to_thread(self.store.delete_prefix, output)  # checkpoints are no longer needed

    async def _publish_taskless(self, job: db.TrainingJob, result: JobResult) -> None:
        for publisher in self.job_publishers:
            if await publisher.claims_job(job):
                await publisher.publish(job, result, join(self.jobs.job_key(str(job.id)), "output"))
                return
        raise RuntimeError(f"nothing serves the results of training job {job.id}")

    def _index_adapter(self, name: str, key: str) -> None:
        """``lora/<served name>.json``: where engines that resolve adapters from the store find it."""
        pointer = {"key": key, "base_model": self.served_base_name}
        self.store.write(f"lora/{name}.json", msgspec.json.encode(pointer))


def served_adapter_key(task_id: uuid.UUID, version: int) -> str:
    return f"lora/{version_model_name(task_id, version)}.json"


def local_adapter_path(store: Store, adapter_dir: str) -> Path:
    """A version's adapter folder on this machine: a store key materialised, or an older row's path."""
    if Path(adapter_dir).is_absolute():
        return Path(adapter_dir)
    return store.materialise_dir(adapter_dir)


def local_model_dir(model: str | None) -> str:
    """The local directory of the base model's weights, which the training child reads.

    A directory is used as it is; a Hugging Face id is looked up in the local Hugging Face cache (never
    downloaded here: the engine has already fetched it when it started).
    """
    if model is None:
        raise FieldsInvalidError(
            {"base_model": "training needs the gateway to run the base model itself (vlmgw serve --model)"}
        )
    if Path(model).is_dir():
        return str(Path(model).resolve())
    try:
        from huggingface_hub import snapshot_download

        return str(snapshot_download(model, local_files_only=True))
    except Exception as exc:
        raise FieldsInvalidError(
            {"base_model": f"no local copy of `{model}` to train from ({exc})"}
        ) from None


def _render(one: Callable[[Any], Any]) -> Callable[[Any], Awaitable[list[Any]]]:
    async def render(rows: Any) -> list[Any]:
        return [one(r) for r in rows]

    return render
