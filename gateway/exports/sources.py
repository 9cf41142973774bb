"""Which files a trained model version exports from: its adapter directory and its base model's directory.

The base model is the directory the version was trained on, read from its training job's spec (exactly the
weights the adapter was fitted to), else the directory this gateway serves under the version's base model
name (``vlmgw serve --model DIR`` or a Hugging Face id in the local cache). ``vlmgw export`` also names
models the way clients do: ``task-<task id>-v<N>``, ``task-<task id>`` (the production version) or a model
version id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from gateway.catalog.names import parse_model_name, version_model_name
from gateway.db import models as db
from gateway.errors import ConflictError, ModelNotFoundError
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


def trained_base_dir(version: db.ModelVersion, jobs_dir: Path) -> Path | None:
    """The base model directory in the spec of the job that trained ``version``, if it still exists."""
    if version.job_id is None:
        return None
    spec = jobs_dir / str(version.job_id) / "spec.json"
    try:
        base = json.loads(spec.read_text()).get("base_model")
    except (OSError, ValueError):
        return None
    return Path(base) if isinstance(base, str) and Path(base).is_dir() else None


def export_source(
    version: db.ModelVersion,
    jobs_dir: Path | None,
    bases: BaseModels,
    adapter_path: Callable[[str], Path] = Path,
) -> ExportSource:
    """The adapter and base directories of ``version``; 409 when either is not on this machine.

    ``jobs_dir``: where training jobs keep their specs (None: use ``bases`` only, e.g. a directory the
    operator named); ``adapter_path``: the local folder of a version's adapter (a model-store key
    materialised, see ``gateway.training.service.local_adapter_path``)."""
    name = version_model_name(version.task_id, version.version)
    adapter = adapter_path(version.adapter_dir)
    if not adapter.is_dir():
        raise ConflictError(
            f"The adapter files of {name} are missing ({adapter}).", code="model_files_missing"
        )
    trained = trained_base_dir(version, jobs_dir) if jobs_dir is not None else None
    base = trained or bases.directory(version.base_model)
    if base is None:
        raise ConflictError(
            f"The base model `{version.base_model}` of {name} is not on this machine; serve it here "
            "(vlmgw serve --model DIR) or give its directory (vlmgw export --base-model DIR).",
            code="base_model_unavailable",
        )
    return ExportSource(adapter_dir=adapter, base_dir=base, name=name)


async def version_by_name(model: str) -> db.ModelVersion:
    """The version a model name or version id names, in any workspace (the operator's command line)."""
    try:
        row = await db.ModelVersion.filter(id=uuid.UUID(model)).first()
    except ValueError:
        row = None
        parsed = parse_model_name(model)
        if parsed is not None:
            task_id, number = parsed
            if number is None:
                task = await db.Task.filter(id=task_id).first()
                number = task.production_version if task is not None else 0
            row = await db.ModelVersion.filter(task_id=task_id, version=number).first()
    if row is None:
        raise ModelNotFoundError(model)
    return row
