"""``/v1/fine_tuning/jobs``: OpenAI's fine-tuning jobs on the gateway's one job system.

``create`` checks the request and both files (every bad line named in one 400; nothing is created for a bad
file), writes the conversations and their checked images into the job's folder in the store
(``jobs/<id>/media/``), and starts the job through ``TrainingService.start_prepared``: the same lease, trainer
child, events, checkpoints, cancel, resume and take-over as ``/vlm/v2`` training, so the job is also
``GET /vlm/v2/training-job/<uuid>/``. Status, progress and events are the training job's; this service adds
OpenAI's view of them (``ftjob-`` ids, statuses, ``error``, ``estimated_finish``, events newest first) and the
job's request (``FineTuningJob`` row). When the trainer succeeds, ``FineTunedModels.publish`` serves the
model and its checkpoints.

Hyper-parameters: ``n_epochs``, ``batch_size`` and ``learning_rate_multiplier`` are each ``"auto"`` (the
trainer's default for the base model's size) or a value; a checkpoint is kept at the end of each epoch (the
last two are served, with the final model, as OpenAI does) and, with a validation file, the validation loss is
measured at the end of each epoch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
import uuid
from typing import Any

import msgspec

from finetune.spec import HyperParameters, count_parameters, resolve
from gateway.db import models as db
from gateway.errors import FieldsInvalidError, NotFoundError
from gateway.finetuning import schemas as wire
from gateway.finetuning.files import FileService, file_key, refused
from gateway.finetuning.models import FineTunedModels
from gateway.finetuning.training_file import (
    Conversation,
    TrainingFileError,
    conversation_payload,
    image_extension,
    parse_lines,
    resolve_media,
)
from gateway.media.pipeline import MediaPipeline
from gateway.training.service import PreparedJob, TrainingService

STATUS = {"interrupted": "queued"}  # taken over by a gateway shortly; OpenAI has no such status
FINAL = ("succeeded", "failed", "cancelled")


def _ts(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


class FineTuningService:
    def __init__(
        self, training: TrainingService, files: FileService, models: FineTunedModels, media: MediaPipeline
    ) -> None:
        self.training = training
        self.files = files
        self.models = models
        self.media = media

    # -- create --------------------------------------------------------------------------------------------
    async def create(self, ws: uuid.UUID, body: wire.CreateJob) -> wire.FineTuningJob:
        base = self.training.served_base_name
        if not base or body.model != base:
            trains = f"this gateway fine-tunes `{base}`" if base else "this gateway runs no base model itself"
            raise FieldsInvalidError({"model": f"`{body.model}` cannot be fine-tuned here; {trains}"})
        if body.integrations:
            raise FieldsInvalidError({"integrations": "integrations are not supported"})
        train = await self._conversations(ws, body.training_file, "training_file")
        valid = await self._conversations(ws, body.validation_file, "validation_file")
        hp = await self._hyperparameters(body, len(train), bool(valid))
        job_id = uuid.uuid4()
        await db.TrainingJob.create(
            id=job_id, task=None, status="validating_files", train_samples=len(train),
            test_samples=len(valid), hyperparameters=msgspec.to_builtins(hp),
        )  # fmt: skip
        chosen = body.chosen_hyperparameters()
        await db.FineTuningJob.create(
            id=job_id, workspace_id=ws, training_job_id=job_id, model=body.model,
            training_file=body.training_file, validation_file=body.validation_file, suffix=body.suffix,
            seed=hp.seed or 0, metadata=body.metadata, hyperparameters=msgspec.to_builtins(chosen),
        )  # fmt: skip
        files = body.training_file + (f" and {body.validation_file}" if body.validation_file else "")
        await self._event(job_id, f"Validating training file: {files}")
        try:
            examples = await self._write_examples(job_id, train)
            held_out = await self._write_examples(job_id, valid)
        except Exception as exc:
            await db.TrainingJob.filter(id=job_id).update(
                status="failed", error=f"could not store the files: {exc}"
            )
            raise
        await self._event(job_id, "Files validated, moving job to queued state")
        await db.TrainingJob.filter(id=job_id).update(status="queued")
        prepared = PreparedJob(
            train=examples, held_out=held_out, hyperparameters=msgspec.to_builtins(hp), seed=hp.seed or 0
        )
        await self.training.start_prepared(job_id, prepared)
        await self._event(job_id, "Fine-tuning job started")
        return await self.get(ws, wire.job_id(job_id))

    async def _conversations(self, ws: uuid.UUID, ref: str | None, param: str) -> list[Conversation]:
        if ref is None:
            return []
        try:
            row = await self.files.row(ws, ref)
        except Exception:
            raise FieldsInvalidError({param: f"no file `{ref}` in this workspace"}) from None
        if row.purpose != "fine-tune":
            raise FieldsInvalidError(
                {param: f"`{ref}` has purpose `{row.purpose}`; upload it as `fine-tune`"}
            )
        data = await asyncio.to_thread(self.files.store.read, file_key(ws, row.id))
        try:
            return await resolve_media(self.media, parse_lines(data), str(ws))
        except TrainingFileError as exc:
            raise refused(exc, param, param.replace("_", " ")) from None

    async def _hyperparameters(self, body: wire.CreateJob, n_train: int, validated: bool) -> HyperParameters:
        """The trainer's hyper-parameters: the chosen values; a checkpoint and validation loss per epoch."""
        chosen = body.chosen_hyperparameters()
        hp = HyperParameters(
            epochs=None if chosen.n_epochs == "auto" else chosen.n_epochs,
            batch_size=None if chosen.batch_size == "auto" else chosen.batch_size,
            learning_rate_multiplier=None
            if chosen.learning_rate_multiplier == "auto"
            else chosen.learning_rate_multiplier,
            seed=body.seed if body.seed is not None else 0,
        )
        base_dir = await asyncio.to_thread(self.training.base_model_dir, self.training.served_base_name)
        resolved = resolve(hp, await asyncio.to_thread(count_parameters, base_dir))
        per_epoch = max(1, math.ceil(n_train / (resolved.batch_size * resolved.gradient_accumulation)))
        total = resolved.max_steps or per_epoch * resolved.epochs
        every = min(per_epoch, total)
        return msgspec.structs.replace(hp, checkpoint_every=every, eval_every=every if validated else None)

    async def _write_examples(
        self, job_id: uuid.UUID, conversations: list[Conversation]
    ) -> list[dict[str, Any]]:
        """Each conversation's images written once into the job's folder; the spec's examples naming them."""
        out = []
        for conversation in conversations:
            paths = []
            for data in conversation.images:
                name = f"media/{hashlib.sha256(data).hexdigest()}.{image_extension(data)}"
                await self.training.jobs.write_file(str(job_id), name, data)
                paths.append(name)
            out.append(conversation_payload(conversation, paths))
        return out

    @staticmethod
    async def _event(job_id: uuid.UUID, message: str, level: str = "info") -> None:
        await db.TrainingEvent.create(job_id=job_id, level=level, type="message", message=message, data={})

    # -- reading -------------------------------------------------------------------------------------------
    async def _rows(self, ws: uuid.UUID, ref: str) -> tuple[db.FineTuningJob, db.TrainingJob]:
        row_id = wire.parse_id(ref, wire.JOB_PREFIX, "fine-tuning job")
        ft = await db.FineTuningJob.filter(id=row_id, workspace_id=ws).first()
        if ft is None:
            raise NotFoundError(f"No such fine-tuning job: `{ref}`.", code="fine_tuning_job_not_found")
        return ft, await db.TrainingJob.get(id=ft.training_job_id)

    async def get(self, ws: uuid.UUID, ref: str) -> wire.FineTuningJob:
        return job_out(*await self._rows(ws, ref))

    async def listing(self, ws: uuid.UUID, after: str | None, limit: int) -> wire.JobList:
        query = db.FineTuningJob.filter(workspace_id=ws)
        if after:
            anchor, _ = await self._rows(ws, after)
            query = query.filter(created__lt=anchor.created)
        rows = await query.order_by("-created", "-id").limit(limit + 1)
        runs = {r.id: r for r in await db.TrainingJob.filter(id__in=[f.training_job_id for f in rows])}
        data = [job_out(f, runs[f.training_job_id]) for f in rows[:limit]]
        return wire.JobList(data=data, has_more=len(rows) > limit)

    async def cancel(self, ws: uuid.UUID, ref: str) -> wire.FineTuningJob:
        _ft, run = await self._rows(ws, ref)
        await self.training.cancel(ws, run.id)  # 409 when it has already ended
        return await self.get(ws, ref)

    async def events(self, ws: uuid.UUID, ref: str, after: str | None, limit: int) -> wire.EventList:
        """Newest first, as OpenAI lists them; ``after`` is an event id (the page goes on with older ones)."""
        _ft, run = await self._rows(ws, ref)
        query = db.TrainingEvent.filter(job_id=run.id)
        if after:
            try:
                query = query.filter(id__lt=int(after.removeprefix(wire.EVENT_PREFIX)))
            except ValueError:
                raise FieldsInvalidError({"after": f"`{after[:100]}` is not an event id"}) from None
        rows = await query.order_by("-id").limit(limit + 1)
        return wire.EventList(data=[event_out(e) for e in rows[:limit]], has_more=len(rows) > limit)

    async def checkpoints(
        self, ws: uuid.UUID, ref: str, after: str | None, limit: int
    ) -> wire.CheckpointList:
        ft, _run = await self._rows(ws, ref)
        gone = set(ft.deleted_models or [])
        kept = sorted((c for c in ft.checkpoints or [] if c["name"] not in gone), key=lambda c: -c["step"])
        items = [checkpoint_out(ft, c) for c in kept]
        if after:
            ids = [c.id for c in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return wire.CheckpointList(
            data=page, has_more=len(items) > limit, first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
        )  # fmt: skip


def job_out(ft: db.FineTuningJob, run: db.TrainingJob) -> wire.FineTuningJob:
    status = STATUS.get(run.status, run.status)
    error = None
    if status == "failed":
        code = (ft.error or {}).get("code", "training_failed")
        error = wire.JobError(code=code, message=run.error or "the training failed", param=None)
    estimated = None
    if status == "running" and run.eta_s is not None:
        estimated = int(dt.datetime.now(dt.UTC).timestamp() + run.eta_s)
    reported = ft.hyperparameters or {}
    hp = wire.ResolvedHyperparameters(
        n_epochs=reported.get("n_epochs", "auto"), batch_size=reported.get("batch_size", "auto"),
        learning_rate_multiplier=reported.get("learning_rate_multiplier", "auto"),
    )  # fmt: skip
    return wire.FineTuningJob(
        id=wire.job_id(ft.id), created_at=int(ft.created.timestamp()),
        finished_at=_ts(run.finished) if status in FINAL else None, model=ft.model,
        fine_tuned_model=ft.fine_tuned_model if status == "succeeded" else None,
        organization_id=str(ft.workspace_id), status=status, hyperparameters=hp,
        training_file=ft.training_file, validation_file=ft.validation_file, result_files=[],
        trained_tokens=ft.trained_tokens if status == "succeeded" else None, error=error, seed=ft.seed,
        estimated_finish=estimated, user_provided_suffix=ft.suffix,
        method=wire.MethodOut(type="supervised", supervised={"hyperparameters": msgspec.to_builtins(hp)}),
        metadata=ft.metadata,
    )  # fmt: skip


def event_out(row: db.TrainingEvent) -> wire.JobEvent:
    data = dict(row.data or {})
    if row.type == "metrics":  # OpenAI's metric names beside the trainer's
        openai_names = {"step": data.get("step"), "total_steps": data.get("total_steps"),
                        "train_loss": data.get("loss")}  # fmt: skip
        data = {**openai_names, **{k: v for k, v in data.items() if k not in ("event", "time")}}
    return wire.JobEvent(
        id=f"{wire.EVENT_PREFIX}{row.id}", created_at=int(row.created.timestamp()), level=row.level,
        message=row.message, type=row.type, data=data,
    )  # fmt: skip


def checkpoint_out(ft: db.FineTuningJob, ckpt: dict[str, Any]) -> wire.Checkpoint:
    metrics = ckpt.get("metrics") or {}
    return wire.Checkpoint(
        id=f"{wire.CHECKPOINT_PREFIX}{ft.id.hex}-{ckpt['step']}", created_at=ckpt["created"],
        fine_tuned_model_checkpoint=ckpt["name"], fine_tuning_job_id=wire.job_id(ft.id),
        metrics=wire.CheckpointMetrics(
            step=ckpt["step"], train_loss=metrics.get("train_loss"), valid_loss=metrics.get("valid_loss"),
            full_valid_loss=metrics.get("full_valid_loss"),
        ),
        step_number=ckpt["step"],
    )  # fmt: skip
