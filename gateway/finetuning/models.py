"""Fine-tuned models as a model kind: ``ft:<base>:<suffix>:<job>`` and its checkpoints, per workspace.

When a fine-tuning job succeeds, ``publish`` (the training service's ``JobPublisher`` for these jobs) copies
the trainer's adapter to ``ft/<job>/model/`` in the store and each kept checkpoint's adapter to
``ft/<job>/ckpt-step-<N>/``, registers them with the adapter registry under their public names (so answers
carry the name the client asked for; vLLM takes any adapter name) and records the names on the job. The
names are served at once (the adapter is loaded on first use) and only to keys of the job's workspace; for
anyone else they do not exist (404). ``delete`` (``DELETE /v1/models/...``) unregisters a name and removes
its files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from adapters.registry import AdapterRegistry
from gateway.catalog.catalog import OWNER, Workspace
from gateway.db import models as db
from gateway.errors import ModelNotFoundError, PermissionDeniedError
from gateway.openai_api.protocol import ModelCard
from gateway.training.runner import JobResult
from models_store.store import Store, join

log = logging.getLogger("vlmgw.finetuning")

CHECKPOINT_MARK = ":ckpt-step-"


def model_name(base: str, suffix: str | None, job_id: uuid.UUID) -> str:
    """OpenAI's form: ``ft:<base>:<suffix>:<job>`` (the suffix empty when none was given)."""
    return f"ft:{base}:{suffix or ''}:{job_id.hex}"


def checkpoint_name(model: str, step: int) -> str:
    return f"{model}{CHECKPOINT_MARK}{step}"


@dataclass(frozen=True)
class Served:
    """One servable name of a job (also its adapter's name in the registry) and its adapter's store key."""

    name: str
    key: str
    created: int


def served_names(job: db.FineTuningJob) -> list[Served]:
    """The names a succeeded job serves (its model and checkpoints), less the deleted ones."""
    if not job.fine_tuned_model:
        return []
    finished = int(job.created.timestamp())
    out = [Served(job.fine_tuned_model, f"ft/{job.id}/model", finished)]
    for ckpt in job.checkpoints or []:
        out.append(Served(ckpt["name"], ckpt["key"], ckpt["created"]))
    gone = set(job.deleted_models or [])
    return [s for s in out if s.name not in gone]


async def fine_tuned_model(model: str, workspace: Workspace) -> tuple[db.FineTuningJob, Served]:
    """The job of ``model`` (a fine-tuned model or one of its checkpoints, not deleted) and its served
    name, in ``workspace`` (None: any, for the operator's command line); 404 ``model_not_found`` else."""
    job = await db.FineTuningJob.filter(fine_tuned_model=model.split(CHECKPOINT_MARK, 1)[0]).first()
    if job is None or (workspace is not None and str(job.workspace_id) != str(workspace)):
        raise ModelNotFoundError(model)
    served = next((s for s in served_names(job) if s.name == model), None)
    if served is None:
        raise ModelNotFoundError(model)
    return job, served


class FineTunedModels:
    """``ModelKind`` of ``ft:`` names and ``JobPublisher`` of the fine-tuning API's jobs."""

    def __init__(self, registry: AdapterRegistry, store: Store, base: str) -> None:
        self.registry = registry
        self.store = store
        self.base = base

    # -- ModelKind ----------------------------------------------------------------------------------------
    def claims(self, model: str) -> bool:
        return model.startswith("ft:")

    async def adapter_for(self, model: str, workspace: Workspace) -> str:
        _job, served = await fine_tuned_model(model, workspace)
        await self._ensure_registered(served)
        return served.name

    async def visible(self, cards: list[ModelCard], workspace: Workspace) -> list[ModelCard]:
        """Other workspaces' ``ft:`` names never show; the workspace's models and checkpoints do."""
        kept = [c for c in cards if not c.id.startswith("ft:")]
        jobs = await db.FineTuningJob.filter(workspace_id=workspace, fine_tuned_model__not_isnull=True)
        for job in jobs:
            for served in served_names(job):
                card = ModelCard(served.name, served.created, OWNER, root=served.name, parent=job.model)
                kept.append(card)
        return kept

    async def _ensure_registered(self, served: Served) -> None:
        if self.registry.get(served.name) is not None:
            return
        try:
            path = await asyncio.to_thread(self.store.materialise_dir, served.key)
        except (OSError, ValueError) as exc:
            log.warning("fine-tuned model %s: adapter files unavailable (%s)", served.name, exc)
            raise ModelNotFoundError(served.name) from None
        if not (path / "adapter_config.json").is_file():
            raise ModelNotFoundError(served.name)
        self.registry.register(served.name, path, base_model=self.base)

    # -- JobPublisher --------------------------------------------------------------------------------------
    async def claims_job(self, job: db.TrainingJob) -> bool:
        return await db.FineTuningJob.filter(training_job_id=job.id).exists()

    async def publish(self, job: db.TrainingJob, result: JobResult, output_key: str) -> None:
        """Copy the adapter and the kept checkpoints out of the job's output, register and name them."""
        ft = await db.FineTuningJob.get(training_job_id=job.id)
        name = model_name(ft.model, ft.suffix, ft.id)
        now = int(dt.datetime.now(dt.UTC).timestamp())
        metrics = await _step_metrics(job.id)
        checkpoints: list[dict[str, Any]] = []
        try:
            await self._copy(join(output_key, "adapter"), f"ft/{ft.id}/model", name)
            for step in await asyncio.to_thread(self._kept_steps, output_key):
                key = f"ft/{ft.id}/ckpt-step-{step}"
                source = join(output_key, "checkpoints", f"step-{step:07d}")
                await self._copy(source, key, checkpoint_name(name, step))
                named = {"step": step, "name": checkpoint_name(name, step), "key": key, "created": now}
                checkpoints.append({**named, "metrics": metrics.get(step, {"step": step})})
        except BaseException:
            await self.forget(ft, name)
            raise
        tokens = max((m.get("trained_tokens", 0) for m in metrics.values()), default=0)
        await db.FineTuningJob.filter(id=ft.id).update(
            fine_tuned_model=name, checkpoints=checkpoints, trained_tokens=tokens or None
        )
        for ckpt in checkpoints:
            await _event(job.id, f"Checkpoint created at step {ckpt['step']}: {ckpt['name']}")
        await _event(job.id, f"New fine-tuned model created: {name}")
        await _event(job.id, "The job has successfully completed")
        await asyncio.to_thread(self.store.delete_prefix, output_key)  # optimizer states are not needed

    async def _copy(self, source: str, target: str, served: str) -> None:
        await asyncio.to_thread(self.store.copy_prefix, source, target, frozenset({"trainer_state.pt"}))
        pointer = {"key": target, "base_model": self.base}  # for engines that resolve adapters from the store
        await asyncio.to_thread(self.store.write, f"lora/{served}.json", msgspec.json.encode(pointer))
        path = await asyncio.to_thread(self.store.materialise_dir, target)
        self.registry.register(served, path, base_model=self.base)

    def _kept_steps(self, output_key: str) -> list[int]:
        prefix = join(output_key, "checkpoints")
        steps = set()
        for key in self.store.keys(prefix):
            folder = key.removeprefix(prefix + "/").split("/")[0]
            if folder.startswith("step-") and folder[5:].isdigit():
                steps.add(int(folder[5:]))
        return sorted(steps)

    async def forget(self, ft: db.FineTuningJob, name: str) -> None:
        """Unregister and remove every adapter of a job (after a failed publication)."""
        for served in [a.name for a in self.registry.adapters() if a.name.startswith(name)]:
            self.registry.unregister(served)
        for key in await asyncio.to_thread(self.store.keys, "lora"):
            if key.removeprefix("lora/").startswith(name):
                await asyncio.to_thread(self.store.delete, key)
        await asyncio.to_thread(self.store.delete_prefix, f"ft/{ft.id}")

    async def delete(self, model: str, workspace: uuid.UUID) -> None:
        """Stop serving ``model`` (a fine-tuned model or checkpoint of the workspace) and remove its files."""
        if not model.startswith("ft:"):
            raise PermissionDeniedError(
                f"Only fine-tuned models (`ft:...`) can be deleted; `{model}` is not one."
            )
        job, served = await fine_tuned_model(model, workspace)
        if self.registry.get(served.name) is not None:
            self.registry.unregister(served.name)
        await asyncio.to_thread(self.store.delete, f"lora/{served.name}.json")
        await asyncio.to_thread(self.store.delete_prefix, served.key)
        job.deleted_models = [*(job.deleted_models or []), model]
        await job.save(update_fields=["deleted_models"])


async def _event(job_id: uuid.UUID, message: str) -> None:
    await db.TrainingEvent.create(job_id=job_id, level="info", type="message", message=message, data={})


async def _step_metrics(job_id: uuid.UUID) -> dict[int, dict[str, Any]]:
    """Per step, the loss figures its events reported (OpenAI's checkpoint metrics)."""
    out: dict[int, dict[str, Any]] = {}
    for event in await db.TrainingEvent.filter(job_id=job_id, type="metrics").order_by("id"):
        data = event.data or {}
        step = data.get("step")
        if isinstance(step, int):
            entry = {
                "step": step,
                "train_loss": data.get("loss"),
                "trained_tokens": data.get("trained_tokens", 0),
            }
            if data.get("valid_loss") is not None:
                entry["valid_loss"] = entry["full_valid_loss"] = data["valid_loss"]
            out[step] = entry
    return out
