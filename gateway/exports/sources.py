"""Which files a trained model exports from: its adapter directory and its base model's directory.

A trained model is a platform task version (``task-<task id>-v<N>``) or a model of the OpenAI fine-tuning
API (``ft:<base>:<suffix>:<job>`` or one of its checkpoints, ``...:ckpt-step-<N>``); both are an adapter
in the model store fitted by a training job, so both export the same way (``Trained``). The base model
is the directory the training job's spec names (exactly the weights the adapter was fitted to), else the
directory this gateway serves under the model's base model name (``vlmgw serve --model DIR`` or a Hugging
Face id in the local cache). Names are looked up the way clients write them: ``task-<task id>-v<N>``,
``task-<task id>`` (the production version), a model version id, or an ``ft:`` name.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.catalog.names import parse_model_name, version_model_name
from gateway.db import models as db
from gateway.errors import ConflictError, ModelNotFoundError
from gateway.finetuning.models import Served, fine_tuned_model
from models_store.export import ExportSource


class BaseModels:
    """Local directories of the base models this process knows, by the name they are served under."""

    def __init__(self, served: Mapping[str, str]) -> None:
        self.served = dict(served)

    def directory(self, name: str) -> Path | None:
        model = self.served.get(name)
        if model is None:
            return None
        if Path(model).is_dir():
            return Path(model).resolve()
        try:  # a Hugging Face id: the engine fetched it into the local cache; never download here
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(model, local_files_only=True))
        except Exception:
            return None


@dataclass(frozen=True)
class Trained:
    """A trained model to export: its public name, its adapter (a store key, or an older row's absolute
    path), the name of the base model it was trained on, the training job, and the row it is (a version
    or a fine-tuning job, which an ``ExportJob`` points at)."""

    name: str
    adapter: str
    base_model: str
    job_id: uuid.UUID | None
    version: db.ModelVersion | None = None
    fine_tuning_job: db.FineTuningJob | None = None

    @classmethod
    def of_version(cls, version: db.ModelVersion) -> Trained:
        name = version_model_name(version.task_id, version.version)
        return cls(name, version.adapter_dir, version.base_model, version.job_id, version=version)

    @classmethod
    def of_fine_tuned(cls, job: db.FineTuningJob, served: Served) -> Trained:
        return cls(served.name, served.key, job.model, job.training_job_id, fine_tuning_job=job)

    @property
    def owner(self) -> dict[str, Any]:
        """The ``ExportJob`` relation that an export of this model points at (with ``model``, the name:
        one fine-tuning job serves several models, its final one and its checkpoints)."""
        if self.version is not None:
            return {"version": self.version}
        return {"fine_tuning_job": self.fine_tuning_job}


def trained_base_dir(job_id: uuid.UUID | None, jobs_dir: Path) -> Path | None:
    """The base model directory in the spec of training job ``job_id``, if it still exists."""
    if job_id is None:
        return None
    spec = jobs_dir / str(job_id) / "spec.json"
    try:
        base = json.loads(spec.read_text()).get("base_model")
    except (OSError, ValueError):
        return None
    return Path(base) if isinstance(base, str) and Path(base).is_dir() else None


def export_source(
    trained: Trained,
    jobs_dir: Path | None,
    bases: BaseModels,
    adapter_path: Callable[[str], Path] = Path,
) -> ExportSource:
    """The adapter and base directories of ``trained``; 409 when either is not on this machine.

    ``jobs_dir``: where training jobs keep their specs (None: use ``bases`` only, e.g. a directory the
    operator named); ``adapter_path``: the local folder of an adapter (a model-store key materialised, see
    ``gateway.training.service.local_adapter_path``)."""
    name = trained.name
    try:
        adapter = adapter_path(trained.adapter)
    except (OSError, ValueError):  # a store key whose files are gone
        adapter = Path(trained.adapter)
    if not adapter.is_dir():
        raise ConflictError(
            f"The adapter files of {name} are missing ({adapter}).", code="model_files_missing"
        )
    found = trained_base_dir(trained.job_id, jobs_dir) if jobs_dir is not None else None
    base = found or bases.directory(trained.base_model)
    if base is None:
        raise ConflictError(
            f"The base model `{trained.base_model}` of {name} is not on this machine; serve it here "
            "(vlmgw serve --model DIR) or give its directory (vlmgw export --base-model DIR).",
            code="base_model_unavailable",
        )
    return ExportSource(adapter_dir=adapter, base_dir=base, name=name)


async def trained_by_name(model: str, workspace: uuid.UUID | None) -> Trained:
    """The trained model a name (or model version id) names in ``workspace`` (None: any workspace, for
    the operator's command line); 404 ``model_not_found`` for unknown, deleted or other workspaces'."""
    if model.startswith("ft:"):
        return Trained.of_fine_tuned(*await fine_tuned_model(model, workspace))
    versions = (
        db.ModelVersion.all() if workspace is None else db.ModelVersion.filter(task__workspace_id=workspace)
    )
    try:
        row = await versions.filter(id=uuid.UUID(model)).first()
    except ValueError:
        row = None
        parsed = parse_model_name(model)
        if parsed is not None:
            task_id, number = parsed
            if number is None:
                task = await db.Task.filter(id=task_id).first()
                number = task.production_version if task is not None else 0
            row = await versions.filter(task_id=task_id, version=number).first()
    if row is None:
        raise ModelNotFoundError(model)
    return Trained.of_version(row)
