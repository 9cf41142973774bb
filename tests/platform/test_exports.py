"""Exports over the platform API with the real exporter child (``python -m models_store.export``).

A trained version is a ``ModelVersion`` row pointing at a LoRA adapter on the tiny model (made with peft,
as training saves it). The conversions themselves are tested in tests/unit/test_export_formats.py and, over
the API against real vLLM, in tests/integration/test_export.py; here the fast ``adapter`` format carries
the rules, and a failing ``merged`` conversion the clean-up. On SQLite and PostgreSQL: per-workspace
404s, bad requests as 400s naming the field, 409 while an archive is not ready, a tar with its SHA-256 in
headers and a checksum file, a failed export leaving no files, expiry (410), interrupted jobs failed by
the sweep, and ``vlmgw export`` working offline on the same data directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db import models as db
from gateway.db.connection import open_database
from gateway.errors import ConflictError
from gateway.exports.schemas import ExportRequest
from gateway.exports.service import ExportService
from gateway.exports.sources import BaseModels
from gateway.finetuning.models import FineTunedModels
from gateway.settings import Settings
from gateway.training.runner import JobResult
from models_store.tiny_model import cached_tiny_model
from tests.platform.conftest import Keys, auth
from tests.support.export_model import greedy, image_inputs, last_logits, make_adapter

TTL_S = 3.0


@pytest.fixture(scope="module")
def tiny() -> Path:
    return cached_tiny_model()


@pytest.fixture(scope="module")
def adapter(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny, tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture(scope="module")
async def app_client(
    db_url: str, keys: Keys, tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The gateway (no engine) serving the tiny model's name, exports expiring after a few seconds."""
    root = tmp_path_factory.mktemp("export-gw")
    settings = Settings(
        data_dir=root / "data", database_url=db_url, key_cache_ttl_s=0.0, model=str(tiny), export_ttl_s=TTL_S
    )
    app = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=app) as client:
        yield client


def in_db(client: AsyncTestClient[Any]) -> contextlib.AbstractAsyncContextManager[Any]:
    """The app's database, opened in the test's own event loop (the app's connections live in the test
    client's loop; using them from here would open connections nobody closes)."""
    return open_database(client.app.state.settings.db_url, migrate=False)


async def new_version(
    client: AsyncTestClient[Any],
    workspace: str,
    adapter_dir: Path,
    *,
    base_model: str | None = None,
    trained_on: Path | None = None,
) -> db.ModelVersion:
    """A task of ``workspace`` with version 1 of its model at ``adapter_dir``; with ``trained_on``, made by a
    training job whose spec names that base model directory (as training writes it)."""
    settings = client.app.state.settings
    async with in_db(client):
        task = await db.Task.create(workspace_id=uuid.UUID(workspace), name="exported", production_version=1)
        training = await db.TrainingJob.create(task=task, status="succeeded") if trained_on else None
        if training is not None:
            spec = settings.store_dir / "jobs" / str(training.id) / "spec.json"
            spec.parent.mkdir(parents=True, exist_ok=True)
            spec.write_text(json.dumps({"base_model": str(trained_on)}))
        return await db.ModelVersion.create(
            task=task, version=1, base_model=base_model or settings.engine_name, adapter_dir=str(adapter_dir),
            job=training,
        )  # fmt: skip


async def wait_done(client: AsyncTestClient[Any], key: str, export_id: str) -> dict[str, Any]:
    for _ in range(1200):
        body: dict[str, Any] = (await client.get(f"/vlm/v2/export/{export_id}/", headers=auth(key))).json()
        if body["status"] not in ("queued", "running"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"export stayed {body['status']}")


async def start_export(
    client: AsyncTestClient[Any], keys: Keys, adapter_dir: Path, fmt: str = "adapter"
) -> tuple[db.ModelVersion, Any]:
    """A new version in A's workspace (``new_version``) and the response to A's exporting it as ``fmt``."""
    version = await new_version(client, keys.ws_a, adapter_dir)
    url = f"/vlm/v2/model/{version.id}/export/"
    return version, await client.post(url, json={"format": fmt}, headers=auth(keys.a))


def exports_dir(client: AsyncTestClient[Any]) -> Path:
    return Path(client.app.state.services.export_service.exports_dir)


async def test_adapter_export_downloads_as_a_checksummed_tar(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path
) -> None:
    version, started = await start_export(app_client, keys, adapter)
    assert started.status_code == 201, started.text
    assert started.json()["status"] in ("queued", "running") and started.json()["download_url"] is None
    done = await wait_done(app_client, keys.a, started.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["model"] == f"task-{version.task_id}-v1" and done["progress"] == 1.0
    assert done["file_name"] == f"task-{version.task_id}-v1-adapter.tar"
    messages = [e["message"] for e in done["events"]]
    assert messages[0] == "Export queued" and messages[-1] == "Export finished"
    assert any(e["data"].get("stage") == "copy" for e in done["events"])
    assert done["download_url"].startswith("http") and done["download_url"].endswith("/download/")
    download = await app_client.get(done["download_url"], headers=auth(keys.a))
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-tar"
    assert done["file_name"] in download.headers["content-disposition"]
    digest = hashlib.sha256(download.content).hexdigest()
    assert download.headers["x-checksum-sha256"] == digest == done["sha256"]
    assert download.headers["repr-digest"] == f"sha-256=:{base64.b64encode(bytes.fromhex(digest)).decode()}:"
    assert done["size_bytes"] == len(download.content)
    checksum = await app_client.get(done["checksum_url"], headers=auth(keys.a))
    assert checksum.text == f"{digest}  {done['file_name']}\n"
    with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
        files = tar.getnames()
        weights = tar.extractfile(f"task-{version.task_id}-v1-adapter/adapter_model.safetensors")
        assert weights is not None and weights.read() == (adapter / "adapter_model.safetensors").read_bytes()
    assert f"task-{version.task_id}-v1-adapter/SHA256SUMS" in files
    listed = (await app_client.get(f"/vlm/v2/model/{version.id}/exports/", headers=auth(keys.a))).json()
    assert [e["id"] for e in listed["results"]] == [done["id"]]


async def test_other_workspaces_get_404_everywhere(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path
) -> None:
    version, started = await start_export(app_client, keys, adapter)
    export_id = started.json()["id"]
    await wait_done(app_client, keys.a, export_id)
    stranger = auth(keys.b)
    body = {"format": "adapter"}
    post = await app_client.post(f"/vlm/v2/model/{version.id}/export/", json=body, headers=stranger)
    assert post.status_code == 404 and post.json()["error"]["code"] == "not_found"
    for path in ("", "download/", "checksum/"):
        response = await app_client.get(f"/vlm/v2/export/{export_id}/{path}", headers=stranger)
        assert response.status_code == 404, path
    assert (await app_client.get(f"/vlm/v2/model/{version.id}/exports/", headers=stranger)).status_code == 404
    assert (await app_client.delete(f"/vlm/v2/export/{export_id}/", headers=stranger)).status_code == 404
    mine = await app_client.get(f"/vlm/v2/export/{export_id}/", headers=auth(keys.a))
    assert mine.status_code == 200 and mine.json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "safetensors"}, "format"),
        ({}, "format"),
        ({"format": "merged", "gguf_type": "f16"}, "gguf_type"),
        ({"format": "gguf", "gguf_type": "q4_0"}, "gguf_type"),
        ({"format": "adapter", "zip": True}, "zip"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path, body: dict[str, Any], field: str
) -> None:
    version = await new_version(app_client, keys.ws_a, adapter)
    response = await app_client.post(f"/vlm/v2/model/{version.id}/export/", json=body, headers=auth(keys.a))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and field in error["fields"]


async def test_missing_or_unexportable_models(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path, tiny: Path, tmp_path: Path
) -> None:
    headers = auth(keys.a)
    body = {"format": "adapter"}
    missing = await app_client.post(f"/vlm/v2/model/{uuid.uuid4()}/export/", json=body, headers=headers)
    assert missing.status_code == 404
    gone = await new_version(app_client, keys.ws_a, tmp_path / "deleted-adapter")
    response = await app_client.post(f"/vlm/v2/model/{gone.id}/export/", json=body, headers=headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "model_files_missing"
    elsewhere = await new_version(app_client, keys.ws_a, adapter, base_model="a-model-not-served-here")
    response = await app_client.post(f"/vlm/v2/model/{elsewhere.id}/export/", json=body, headers=headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "base_model_unavailable"
    llava = tmp_path / "llava-base"  # the training job's base directory is what the version was trained on
    shutil.copytree(tiny, llava)
    config = json.loads((llava / "config.json").read_text())
    (llava / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    other = await new_version(app_client, keys.ws_a, adapter, base_model="not-served", trained_on=llava)
    gguf = {"format": "gguf"}
    response = await app_client.post(f"/vlm/v2/model/{other.id}/export/", json=gguf, headers=headers)
    assert response.status_code == 400 and response.json()["error"]["param"] == "format"
    assert "`llava`" in response.json()["error"]["fields"]["format"]


async def test_a_failed_export_leaves_nothing_and_cannot_be_downloaded(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-adapter"
    shutil.copytree(adapter, broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    _version, started = await start_export(app_client, keys, broken, "merged")
    done = await wait_done(app_client, keys.a, started.json()["id"])
    assert done["status"] == "failed" and done["error"] and done["download_url"] is None
    assert done["events"][-1]["level"] == "error"
    for path in ("download/", "checksum/"):
        response = await app_client.get(f"/vlm/v2/export/{done['id']}/{path}", headers=auth(keys.a))
        assert response.status_code == 409 and response.json()["error"]["code"] == "export_not_ready"
    leftovers = [p.name for p in exports_dir(app_client).iterdir() if done["id"] in p.name]
    assert leftovers == []


async def test_finished_exports_expire(app_client: AsyncTestClient[Any], keys: Keys, adapter: Path) -> None:
    _version, started = await start_export(app_client, keys, adapter)
    done = await wait_done(app_client, keys.a, started.json()["id"])
    created = dt.datetime.fromisoformat(done["finished"])
    assert dt.datetime.fromisoformat(done["expires"]) - created == dt.timedelta(seconds=TTL_S)
    assert (exports_dir(app_client) / done["id"]).is_dir()
    await asyncio.sleep(TTL_S + 0.5)
    async with in_db(app_client):
        await app_client.app.state.services.export_service.sweep()
    expired = (await app_client.get(f"/vlm/v2/export/{done['id']}/", headers=auth(keys.a))).json()
    assert expired["status"] == "expired" and expired["download_url"] is None
    response = await app_client.get(f"/vlm/v2/export/{done['id']}/download/", headers=auth(keys.a))
    assert response.status_code == 410 and response.json()["error"]["code"] == "export_expired"
    assert not (exports_dir(app_client) / done["id"]).exists()


async def test_delete_removes_the_export(app_client: AsyncTestClient[Any], keys: Keys, adapter: Path) -> None:
    _version, started = await start_export(app_client, keys, adapter)
    done = await wait_done(app_client, keys.a, started.json()["id"])
    assert (await app_client.delete(f"/vlm/v2/export/{done['id']}/", headers=auth(keys.a))).status_code == 204
    assert (await app_client.get(f"/vlm/v2/export/{done['id']}/", headers=auth(keys.a))).status_code == 404
    assert not (exports_dir(app_client) / done["id"]).exists()


async def test_sweep_fails_jobs_whose_gateway_stopped_and_removes_orphans(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path
) -> None:
    version = await new_version(app_client, keys.ws_a, adapter)
    service: ExportService = app_client.app.state.services.export_service
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    async with in_db(app_client):
        dead = await db.ExportJob.create(
            workspace_id=uuid.UUID(keys.ws_a), version=version, model="m", format="merged", status="running",
            heartbeat=long_ago,
        )  # fmt: skip
        service.tmp_dir(dead.id).mkdir(parents=True)
        (service.tmp_dir(dead.id) / "half.tar").write_bytes(b"half")
        orphan = service.final_dir(uuid.uuid4())
        orphan.mkdir()
        await service.sweep()
        row = await db.ExportJob.get(id=dead.id)
    assert row.status == "failed" and "gateway running it stopped" in (row.error or "")
    assert not service.tmp_dir(dead.id).exists() and not orphan.exists()


async def test_one_active_export_per_model_and_format_and_shutdown_cleans_up(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path, tmp_path: Path
) -> None:
    """With an exporter that hangs: a second identical export is 409; closing the service (gateway shutdown)
    kills the child, fails the job and removes its files."""
    version = await new_version(app_client, keys.ws_a, adapter)
    hang = [sys.executable, "-c", 'import time; print(\'{"event": "start"}\', flush=True); time.sleep(60)']
    service = ExportService(
        exports_dir=tmp_path / "exports", jobs_dir=tmp_path / "jobs",
        bases=BaseModels({version.base_model: str(app_client.app.state.settings.model)}), ttl_s=60,
        command=lambda *_args: hang,
    )  # fmt: skip
    async with in_db(app_client):
        job = await service.start(uuid.UUID(keys.ws_a), version.id, ExportRequest(format="merged"))
        with pytest.raises(ConflictError) as conflict:
            await service.start(uuid.UUID(keys.ws_a), version.id, ExportRequest(format="merged"))
        assert conflict.value.code == "export_in_progress"
        other = await service.start(uuid.UUID(keys.ws_a), version.id, ExportRequest(format="adapter"))
        for _ in range(100):
            if service.tmp_dir(job.id).exists():
                break
            await asyncio.sleep(0.05)
        await service.close()
        rows = {r.id: r for r in await db.ExportJob.filter(id__in=[job.id, other.id])}
    assert rows[job.id].status == rows[other.id].status == "failed"
    assert "stopped before it finished" in (rows[job.id].error or "")
    assert not list((tmp_path / "exports").iterdir())


async def test_vlmgw_export_works_offline_from_the_data_directory(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path, tiny: Path, db_url: str, tmp_path: Path
) -> None:
    version = await new_version(app_client, keys.ws_a, adapter)
    data_dir = app_client.app.state.settings.data_dir
    common = ["--data-dir", str(data_dir), "--database-url", db_url]

    def vlmgw_export(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "export", *args, *common],
            env={**os.environ, "VLMGW_MODEL": str(tiny)},
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    name = f"task-{version.task_id}-v1"
    done = vlmgw_export(name, "--format", "adapter", "--out", str(tmp_path / "a"), "--base-model", str(tiny))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "a")
    weights = "adapter_model.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() == (adapter / weights).read_bytes()
    by_id = vlmgw_export(str(version.id), "--format", "adapter", "--out", str(tmp_path / "b"))
    # without --base-model: the gateway's served model from the environment, like `vlmgw serve`
    assert by_id.returncode == 0, by_id.stderr
    unknown = vlmgw_export(f"task-{uuid.uuid4()}-v1", "--format", "adapter", "--out", str(tmp_path / "c"))
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr and not (tmp_path / "c").exists()
    bad_format = vlmgw_export(name, "--format", "zip", "--out", str(tmp_path / "d"))
    assert bad_format.returncode == 2 and "invalid choice" in bad_format.stderr


# ---- models of the OpenAI fine-tuning API (``ft:...``), exported by name ----------------------------------
@pytest.fixture(scope="module")
def checkpoint_adapter(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny, tmp_path_factory.mktemp("ckpt") / "adapter", seed=1)


async def publish_fine_tuned(
    client: AsyncTestClient[Any], workspace: str, final: Path, checkpoint: Path, *, trained_on: Path | None
) -> db.FineTuningJob:
    """A succeeded job of the fine-tuning API in ``workspace`` whose trainer wrote ``final`` as its adapter
    and ``checkpoint`` at step 2, published as the gateway publishes one (``FineTunedModels.publish``: the
    adapters copied to ``ft/<job>/...`` in the store, the names recorded on the job); with ``trained_on``,
    the training spec names that base directory (as ``TrainingService.start_for`` writes it)."""
    fine_tuned: FineTunedModels = client.app.state.services.fine_tuned_models
    settings = client.app.state.settings
    async with in_db(client):
        run = await db.TrainingJob.create(task=None, status="succeeded")
        await db.FineTuningJob.create(
            id=run.id, workspace_id=uuid.UUID(workspace), training_job=run, model=settings.engine_name,
            training_file="file-0", suffix="acme",
        )  # fmt: skip
        output = f"jobs/{run.id}/output"
        fine_tuned.store.push_dir(final, f"{output}/adapter")
        fine_tuned.store.push_dir(checkpoint, f"{output}/checkpoints/step-0000002")
        if trained_on is not None:
            fine_tuned.store.write(
                f"jobs/{run.id}/spec.json", json.dumps({"base_model": str(trained_on)}).encode()
            )
        await fine_tuned.publish(run, JobResult(outcome="succeeded", exit_code=0), output)
        return await db.FineTuningJob.get(id=run.id)


@pytest.fixture(scope="module")
async def fine_tuned(
    app_client: AsyncTestClient[Any], keys: Keys, adapter: Path, checkpoint_adapter: Path, tiny: Path
) -> db.FineTuningJob:
    return await publish_fine_tuned(app_client, keys.ws_a, adapter, checkpoint_adapter, trained_on=tiny)


async def export_by_name(
    client: AsyncTestClient[Any], key: str, model: str, fmt: str, into: Path
) -> tuple[dict[str, Any], Path]:
    """POST /vlm/v2/exports/ for ``model``, wait, download and unpack the tar into ``into``: the finished
    export and its folder."""
    started = await client.post("/vlm/v2/exports/", json={"model": model, "format": fmt}, headers=auth(key))
    assert started.status_code == 201, started.text
    done = await wait_done(client, key, started.json()["id"])
    assert done["status"] == "succeeded", done
    download = await client.get(done["download_url"], headers=auth(key))
    assert hashlib.sha256(download.content).hexdigest() == download.headers["x-checksum-sha256"]
    with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
        tar.extractall(into, filter="data")
    (folder,) = into.iterdir()
    return done, folder


def tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def assert_same_tensors(got: dict[str, Any], want: dict[str, Any]) -> None:
    import torch

    assert sorted(got) == sorted(want) and got
    assert all(torch.equal(got[name], want[name]) for name in want)


async def test_fine_tuned_models_and_checkpoints_export_by_name_as_trained(
    app_client: AsyncTestClient[Any],
    keys: Keys,
    fine_tuned: db.FineTuningJob,
    adapter: Path,
    checkpoint_adapter: Path,
    tmp_path: Path,
) -> None:
    name = fine_tuned.fine_tuned_model
    assert name is not None and name.startswith("ft:") and name.endswith(f":acme:{fine_tuned.id.hex}")
    (ckpt,) = [c["name"] for c in fine_tuned.checkpoints]
    done, folder = await export_by_name(app_client, keys.a, name, "adapter", tmp_path / "model")
    assert (done["model"], done["model_id"]) == (name, None)
    assert done["fine_tuning_job"] == f"ftjob-{fine_tuned.id.hex}"
    assert folder.name == done["file_name"].removesuffix(".tar") and ":" not in done["file_name"]
    assert_same_tensors(tensors(folder), tensors(adapter))
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 8
    ckpt_done, ckpt_folder = await export_by_name(app_client, keys.a, ckpt, "adapter", tmp_path / "ckpt")
    assert ckpt_done["model"] == ckpt and ckpt_done["fine_tuning_job"] == done["fine_tuning_job"]
    assert_same_tensors(
        tensors(ckpt_folder), tensors(checkpoint_adapter)
    )  # the checkpoint's, not the model's

    async def listed(**params: str) -> list[str]:
        page = await app_client.get("/vlm/v2/exports/", params=params, headers=auth(keys.a))
        assert page.status_code == 200, page.text
        return [e["id"] for e in page.json()["results"]]

    assert await listed(model=name) == [done["id"]]
    assert await listed(model=ckpt) == [ckpt_done["id"]]
    everything = await listed(page_size="100")
    assert everything.index(ckpt_done["id"]) < everything.index(done["id"])  # newest first
    for path in ("", "checksum/"):  # the export's own routes are the same as for versions
        response = await app_client.get(f"/vlm/v2/export/{done['id']}/{path}", headers=auth(keys.a))
        assert response.status_code == 200, path


async def test_merged_fine_tuned_model_generates_like_the_adapter_on_its_base(
    app_client: AsyncTestClient[Any], keys: Keys, fine_tuned: db.FineTuningJob, adapter: Path, tiny: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    assert fine_tuned.fine_tuned_model is not None
    _done, folder = await export_by_name(app_client, keys.a, fine_tuned.fine_tuned_model, "merged", tmp_path)
    image = tmp_path / "red.png"
    Image.new("RGB", (56, 56), (220, 30, 30)).save(image)
    merged = AutoModelForImageTextToText.from_pretrained(str(folder), dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(str(folder))  # the export's own processor and chat template
    inputs = image_inputs(processor, image)
    base = AutoModelForImageTextToText.from_pretrained(str(tiny), dtype=torch.float32).eval()
    base_logits = last_logits(base, inputs)
    reference = PeftModel.from_pretrained(base, str(adapter)).eval()
    assert not torch.allclose(last_logits(merged, inputs), base_logits, atol=1e-2)  # the adapter is merged in
    assert torch.allclose(last_logits(merged, inputs), last_logits(reference, inputs), atol=1e-4)
    assert greedy(merged, processor, inputs) == greedy(reference, processor, inputs)


async def test_fine_tuned_model_exports_as_pt_and_gguf(
    app_client: AsyncTestClient[Any], keys: Keys, fine_tuned: db.FineTuningJob, adapter: Path, tiny: Path,
    db_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """The other two formats of an ``ft:`` model: the .pt loads with its note and answers like
    PeftModel(base, adapter); the GGUF pair reads back as llama.cpp's qwen2vl model + projector."""
    if db_url.startswith("postgres"):
        pytest.skip("the conversions do not touch the database: the SQLite run covers them (~50 s each)")
    import gguf
    import torch
    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    name = fine_tuned.fine_tuned_model
    assert name is not None
    done, folder = await export_by_name(app_client, keys.a, name, "pt", tmp_path / "pt")
    assert done["model"] == name and json.loads((folder / "export.json").read_text())["model"] == name
    code = (folder / "README.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code.replace("PATH/TO/THIS/FOLDER", str(folder)), scope)  # the loader as the note says
    image = tmp_path / "red.png"
    Image.new("RGB", (56, 56), (220, 30, 30)).save(image)
    inputs = image_inputs(scope["processor"], image)
    base = AutoModelForImageTextToText.from_pretrained(str(tiny), dtype=torch.float32).eval()
    reference = PeftModel.from_pretrained(base, str(adapter)).eval()
    assert torch.allclose(last_logits(scope["model"], inputs), last_logits(reference, inputs), atol=1e-4)
    _done, folder = await export_by_name(app_client, keys.a, name, "gguf", tmp_path / "gguf")
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    assert len(ggufs) == 2 and ggufs[1].startswith("mmproj-"), ggufs
    language = gguf.GGUFReader(folder / ggufs[0])
    assert language.fields["general.architecture"].contents() == "qwen2vl"
    projector = gguf.GGUFReader(folder / ggufs[1])
    assert projector.fields["general.architecture"].contents() == "clip"
    assert {t.name for t in language.tensors} >= {"token_embd.weight", "output_norm.weight"}


async def test_fine_tuned_exports_refuse_unknown_foreign_deleted_models_and_bad_formats(
    app_client: AsyncTestClient[Any], keys: Keys, fine_tuned: db.FineTuningJob, adapter: Path,
    checkpoint_adapter: Path,
) -> None:  # fmt: skip
    name = fine_tuned.fine_tuned_model
    assert name is not None

    async def post(key: str, body: dict[str, Any]) -> Any:
        return await app_client.post("/vlm/v2/exports/", json=body, headers=auth(key))

    unknown = name.replace(fine_tuned.id.hex, uuid.uuid4().hex)
    for model, key in [(unknown, keys.a), (name, keys.b), (f"{name}:ckpt-step-99", keys.a),
                       (f"task-{uuid.uuid4()}-v1", keys.a), ("tiny", keys.a)]:  # fmt: skip
        response = await post(key, {"model": model, "format": "adapter"})
        assert response.status_code == 404, (model, response.text)
        assert (
            response.json()["error"]["code"] == "model_not_found"
            and model in response.json()["error"]["message"]
        )
        listing = await app_client.get("/vlm/v2/exports/", params={"model": model}, headers=auth(key))
        assert listing.status_code == 404 and listing.json()["error"]["code"] == "model_not_found"
    # B's own listing shows none of A's exports
    theirs = await app_client.get("/vlm/v2/exports/", headers=auth(keys.b))
    assert theirs.status_code == 200 and theirs.json()["results"] == []
    for body, field in [({"model": name, "format": "safetensors"}, "format"), ({"model": name}, "format"),
                        ({"format": "adapter"}, "model"), ({"model": "", "format": "adapter"}, "model"),
                        ({"model": name, "format": "adapter", "gguf_type": "f16"}, "gguf_type")]:  # fmt: skip
        response = await post(keys.a, body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == field, response.text
    # deleted with DELETE /v1/models/...: gone for exports too (a job without a spec: the served base is used)
    doomed = await publish_fine_tuned(app_client, keys.ws_a, adapter, checkpoint_adapter, trained_on=None)
    assert doomed.fine_tuned_model is not None
    (doomed_ckpt,) = [c["name"] for c in doomed.checkpoints]
    for model in (doomed.fine_tuned_model, doomed_ckpt):
        assert (await post(keys.a, {"model": model, "format": "adapter"})).status_code == 201
    deleted = await app_client.delete(f"/v1/models/{doomed_ckpt}", headers=auth(keys.a))
    assert deleted.status_code == 200, deleted.text
    response = await post(keys.a, {"model": doomed_ckpt, "format": "pt"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert (await post(keys.a, {"model": doomed.fine_tuned_model, "format": "pt"})).status_code == 201


async def test_vlmgw_export_of_fine_tuned_models_works_offline(
    app_client: AsyncTestClient[Any], fine_tuned: db.FineTuningJob, adapter: Path, checkpoint_adapter: Path,
    tiny: Path, db_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    data_dir = app_client.app.state.settings.data_dir

    def vlmgw_export(model: str, out: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "export", model, "--format", "adapter", "--out", str(out),
             "--data-dir", str(data_dir), "--database-url", db_url],
            env={k: v for k, v in os.environ.items() if k != "VLMGW_MODEL"},  # the training spec's base
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    assert fine_tuned.fine_tuned_model is not None
    done = vlmgw_export(fine_tuned.fine_tuned_model, tmp_path / "model")
    assert done.returncode == 0, done.stderr
    assert_same_tensors(tensors(tmp_path / "model"), tensors(adapter))
    (ckpt,) = [c["name"] for c in fine_tuned.checkpoints]
    assert vlmgw_export(ckpt, tmp_path / "ckpt").returncode == 0
    assert_same_tensors(tensors(tmp_path / "ckpt"), tensors(checkpoint_adapter))
    unknown = vlmgw_export(f"{fine_tuned.fine_tuned_model}:ckpt-step-99", tmp_path / "none")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr and not (tmp_path / "none").exists()
