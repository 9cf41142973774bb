"""Exports of trained models: start a conversion job, follow it, serve its archive, expire it.

Flow: ``start`` (a version by id) and ``start_named`` (any trained model by name: a version or a model of
the fine-tuning API, ``ft:...``) check the request without loading anything (the model in the workspace,
its files on this machine, the format possible for its architecture), record an ``ExportJob`` and run the
exporter as a child process (``gateway.exports.runner``), at most ``concurrency`` at a time. The child
builds the archive under ``exports/.tmp-<id>/``; only a complete archive is renamed to ``exports/<id>/``,
and a failure removes the directory: a failed export leaves nothing. Succeeded exports expire after
``ttl_s`` (their files are deleted, the job stays as ``expired``).

Several gateways may share the database and the store, so nothing assumes this process is the only one:
the gateway running a job renews its ``heartbeat``; every gateway's periodic sweep fails jobs whose
heartbeat stopped (their gateway died), deletes expired archives, and removes directories no live job owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.db import models as db
from gateway.errors import ClientError, ConflictError, FieldsInvalidError, NotFoundError
from gateway.exports.runner import ExportEvent, run_export
from gateway.exports.schemas import Export, ExportRequest, NamedExportRequest, export_out
from gateway.exports.sources import BaseModels, Trained, export_source, trained_by_name
from gateway.platform_api.common import Page, PageRequest, get_in_workspace, paginate
from gateway.training.service import local_adapter_path
from models_store.export import ExportError, ExportRefused, ExportSource, check_format
from models_store.store import Store

log = logging.getLogger("vlmgw.exports")

ACTIVE = ("queued", "running")
Command = Callable[[ExportSource, str, str, Path], list[str]]


class ExportGoneError(ClientError, status=410, code="export_expired"):
    """410: the export's archive has expired and was deleted."""


def exporter_command(source: ExportSource, fmt: str, gguf_type: str, archive: Path) -> list[str]:
    """``python -m models_store.export run ... --archive FILE`` for one export."""
    return [
        sys.executable, "-m", "models_store.export", "run", "--adapter", str(source.adapter_dir),
        "--base", str(source.base_dir), "--format", fmt, "--name", source.name, "--gguf-type", gguf_type,
        "--archive", str(archive),
    ]  # fmt: skip


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def event(message: str, level: str = "info", **data: Any) -> dict[str, Any]:
    return {
        "created_at": now().isoformat(timespec="milliseconds"),
        "level": level,
        "message": message,
        "data": data,
    }


@dataclass(kw_only=True, eq=False)
class ExportService:
    exports_dir: Path
    jobs_dir: Path
    bases: BaseModels
    ttl_s: float
    concurrency: int = 1  # a field, not an InitVar: Litestar injects through msgspec, which refuses InitVar
    command: Command = exporter_command
    heartbeat_s: float = 15.0
    adapter_path: Callable[[str], Path] = Path

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(max(1, self.concurrency))
        self._start_lock = asyncio.Lock()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- requests ----------------------------------------------------------------------------------------
    async def start(self, ws: uuid.UUID, version_id: uuid.UUID, request: ExportRequest) -> db.ExportJob:
        """Export the version ``version_id`` of the workspace (``start_trained``)."""
        return await self.start_trained(
            ws, Trained.of_version(await self.version_in(ws, version_id)), request
        )

    async def start_named(self, ws: uuid.UUID, request: NamedExportRequest) -> db.ExportJob:
        """Export the model ``request.model`` names in the workspace (``start_trained``); 404 else."""
        return await self.start_trained(ws, await trained_by_name(request.model, ws), request)

    async def start_trained(self, ws: uuid.UUID, trained: Trained, request: ExportRequest) -> db.ExportJob:
        """Check the request and queue the export; 400/404/409 before anything runs."""
        if request.gguf_type is not None and request.format != "gguf":
            raise FieldsInvalidError({"gguf_type": "applies to format `gguf` only"})
        gguf_type = (request.gguf_type or "f16") if request.format == "gguf" else ""
        source = export_source(trained, self.jobs_dir, self.bases, self.adapter_path)
        try:  # reads config and tokenizer files (a real tokenizer.json is megabytes): off the event loop
            await asyncio.to_thread(check_format, request.format, source, gguf_type or "f16")
        except ExportRefused as exc:
            raise FieldsInvalidError({"format": str(exc)}) from None
        except ExportError as exc:
            raise ConflictError(
                f"{source.name} cannot be exported: {exc}", code="model_files_missing"
            ) from None
        async with self._start_lock:
            await self._refuse_duplicate(trained, request.format, gguf_type)
            row = await db.ExportJob.create(
                workspace_id=ws, **trained.owner, model=source.name, format=request.format,
                gguf_type=gguf_type, status="queued", heartbeat=now(), events=[event("Export queued")],
            )  # fmt: skip
        self._tasks[row.id] = asyncio.create_task(self._run(row.id, source, request.format, gguf_type))
        return row

    @staticmethod
    async def version_in(ws: uuid.UUID, version_id: uuid.UUID) -> db.ModelVersion:
        return await get_in_workspace(db.ModelVersion, version_id, ws, "Model")

    @staticmethod
    async def _refuse_duplicate(trained: Trained, fmt: str, gguf_type: str) -> None:
        same = db.ExportJob.filter(
            **trained.owner, model=trained.name, format=fmt, gguf_type=gguf_type, status__in=ACTIVE
        )
        active = await same.first()
        if active is not None:
            raise ConflictError(
                f"This model is already being exported as {fmt} (export {active.id}, {active.status}).",
                code="export_in_progress",
            )

    async def exports_page(
        self, ws: uuid.UUID, version_id: uuid.UUID, paging: PageRequest, base_url: str
    ) -> Page:
        """One page of a version's exports, newest first, rendered with links under ``base_url``."""
        version = Trained.of_version(await self.version_in(ws, version_id))
        return await self._page(db.ExportJob.filter(**version.owner), paging, base_url)

    async def workspace_page(
        self, ws: uuid.UUID, model: str | None, paging: PageRequest, base_url: str
    ) -> Page:
        """One page of the workspace's exports, newest first; with ``model``, that model's only (404 when
        the workspace has no such model)."""
        rows = db.ExportJob.filter(workspace_id=ws)
        if model is not None:
            trained = await trained_by_name(model, ws)
            rows = rows.filter(**trained.owner, model=trained.name)
        return await self._page(rows, paging, base_url)

    @staticmethod
    async def _page(rows: Any, paging: PageRequest, base_url: str) -> Page:
        async def render(page: Any) -> list[Export]:
            return [export_out(row, base_url) for row in page]

        return await paginate(rows.order_by("-created"), paging, render)

    async def get(self, ws: uuid.UUID, export_id: uuid.UUID) -> db.ExportJob:
        row = await db.ExportJob.filter(id=export_id, workspace_id=ws).first()
        if row is None:
            raise NotFoundError(f"Export {export_id} not found.")
        return row

    async def archive(self, ws: uuid.UUID, export_id: uuid.UUID) -> tuple[db.ExportJob, Path]:
        """The finished export and its archive file; 409 while it is not finished, 410 once expired."""
        row = await self.get(ws, export_id)
        if row.status == "expired":
            raise ExportGoneError(f"Export {export_id} has expired and its archive was deleted.")
        if row.status != "succeeded":
            raise ConflictError(
                f"Export {export_id} is {row.status}; no archive to download.", code="export_not_ready"
            )
        path = self.final_dir(row.id) / row.file_name
        if not path.is_file():
            raise ExportGoneError(f"The archive of export {export_id} is gone.", code="export_missing")
        return row, path

    async def delete(self, ws: uuid.UUID, export_id: uuid.UUID) -> None:
        """Delete an export: stop it if it runs here, then remove its row and files."""
        row = await self.get(ws, export_id)
        task = self._tasks.get(row.id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await db.ExportJob.filter(id=row.id).delete()
        self._remove_files(row.id)

    # -- running a job -----------------------------------------------------------------------------------
    def tmp_dir(self, export_id: uuid.UUID) -> Path:
        return self.exports_dir / f".tmp-{export_id}"

    def final_dir(self, export_id: uuid.UUID) -> Path:
        return self.exports_dir / str(export_id)

    async def _run(self, export_id: uuid.UUID, source: ExportSource, fmt: str, gguf_type: str) -> None:
        beat = asyncio.create_task(self._heartbeat(export_id))
        try:
            async with self._slots:
                await self._set(export_id, status="running", started=now(), heartbeat=now())
                tmp = self.tmp_dir(export_id)
                tmp.mkdir(parents=True, exist_ok=True)
                archive = tmp / f"{source.file_stem}-{fmt}.tar"
                command = self.command(source, fmt, gguf_type or "f16", archive)
                outcome = await run_export(command, tmp / "export.log", lambda e: self._record(export_id, e))
            if outcome.done is None:
                raise ExportError(outcome.error or "the exporter failed")
            os.replace(self.tmp_dir(export_id), self.final_dir(export_id))
            await self._succeed(export_id, outcome.done, archive.name)
        except asyncio.CancelledError:
            await self._fail(export_id, "stopped before it finished (gateway shutdown or export deleted)")
            raise
        except Exception as exc:
            if not isinstance(exc, ExportError):
                log.exception("export %s failed", export_id)
            await self._fail(export_id, str(exc))
        finally:
            beat.cancel()
            self._tasks.pop(export_id, None)

    async def _heartbeat(self, export_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            with contextlib.suppress(Exception):
                await db.ExportJob.filter(id=export_id).update(heartbeat=now())

    async def _record(self, export_id: uuid.UUID, ev: ExportEvent) -> None:
        """Store one event of the child; progress events also move the job's stage and progress."""
        row = await db.ExportJob.filter(id=export_id).first()
        if row is None:
            return
        if ev.event == "progress":
            row.stage, row.progress = ev.stage or row.stage, ev.progress or row.progress
            row.events = [
                *row.events,
                event(ev.message or ev.stage or "", stage=ev.stage, progress=ev.progress),
            ]
        elif ev.event == "start":
            row.events = [*row.events, event(f"Export started ({row.format})")]
        else:
            return  # done and error become the job's final state (_succeed / _fail)
        await row.save(update_fields=["stage", "progress", "events"])

    async def _succeed(self, export_id: uuid.UUID, done: ExportEvent, file_name: str) -> None:
        row = await db.ExportJob.filter(id=export_id).first()
        if row is None:  # deleted while it ran
            self._remove_files(export_id)
            return
        row.status, row.finished, row.progress, row.stage = "succeeded", now(), 1.0, "done"
        row.expires = row.finished + dt.timedelta(seconds=self.ttl_s) if self.ttl_s > 0 else None
        row.file_name, row.size_bytes, row.sha256 = file_name, done.archive_bytes, done.sha256 or ""
        row.events = [
            *row.events,
            event("Export finished", sha256=done.sha256, size_bytes=done.archive_bytes),
        ]
        await row.save()

    async def _fail(self, export_id: uuid.UUID, error: str) -> None:
        self._remove_files(export_id)
        with contextlib.suppress(Exception):
            row = await db.ExportJob.filter(id=export_id).first()
            if row is not None and row.status in ACTIVE:
                row.status, row.error, row.finished = "failed", error, now()
                row.events = [*row.events, event(error, level="error")]
                await row.save()

    async def _set(self, export_id: uuid.UUID, **changes: Any) -> None:
        await db.ExportJob.filter(id=export_id).update(**changes)

    def _remove_files(self, export_id: uuid.UUID) -> None:
        shutil.rmtree(self.tmp_dir(export_id), ignore_errors=True)
        shutil.rmtree(self.final_dir(export_id), ignore_errors=True)

    # -- housekeeping ------------------------------------------------------------------------------------
    async def sweep(self) -> None:
        """Expire old archives, fail jobs whose gateway stopped, remove directories no live job owns."""
        for row in await db.ExportJob.filter(status="succeeded", expires__lt=now()):
            self._remove_files(row.id)
            row.status = "expired"
            row.events = [*row.events, event("Export expired; its archive was deleted")]
            await row.save(update_fields=["status", "events"])
        stale = now() - dt.timedelta(seconds=4 * self.heartbeat_s)
        for row in await db.ExportJob.filter(status__in=ACTIVE, heartbeat__lt=stale):
            if row.id not in self._tasks:
                await self._fail(
                    row.id, "interrupted: the gateway running it stopped; start the export again"
                )
        await self._remove_orphans()

    async def _remove_orphans(self) -> None:
        if not self.exports_dir.is_dir():
            return
        found = list(self.exports_dir.iterdir())  # listed before the query: a job's row predates its files
        live = await db.ExportJob.filter(status__in=(*ACTIVE, "succeeded")).values_list("id", flat=True)
        keep = {str(i) for i in live}
        for path in found:
            if path.name.removeprefix(".tmp-") not in keep:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    async def start_background(self) -> None:
        """Sweep once now, then periodically (every tenth of the time-to-live, 1 s to 5 min)."""
        await self.sweep()
        interval = min(300.0, max(1.0, self.ttl_s / 10)) if self.ttl_s > 0 else 300.0
        self._sweeper = asyncio.create_task(self._sweep_every(interval), name="export-sweeper")

    async def _sweep_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("export sweep failed")

    async def close(self) -> None:
        """Stop the sweeper and every export of this process: each is marked failed, its files removed
        (also those cancelled before they began, which never reached their own error handling)."""
        jobs = list(self._tasks)
        tasks = [t for t in (self._sweeper, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for export_id in jobs:
            await self._fail(export_id, "stopped before it finished (gateway shutdown or export deleted)")


def build_export_service(settings: Any, store: Store) -> ExportService:
    """The service from the gateway's settings: archives in the model store's folder, adapters and job
    specs read through the store, the served base model."""
    served = {settings.engine_name: settings.model} if settings.model else {}
    return ExportService(
        exports_dir=settings.store_dir / "exports",
        jobs_dir=store.local_path("jobs"),  # specs of jobs trained here (or cached here)
        adapter_path=lambda key: local_adapter_path(store, key),
        bases=BaseModels(served),
        ttl_s=settings.export_ttl_s,
        concurrency=settings.export_concurrency,
    )
