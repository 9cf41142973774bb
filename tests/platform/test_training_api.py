"""Training over the platform API with a stand-in trainer child (the job plumbing, not the learning).

The real trainer and the whole loop on real vLLM are tested in tests/integration; here a small script plays
``python -m finetune run`` (same spec file, same JSON-line events, same output layout) so the API rules run
fast on both databases: data checks listing every bad sample, one active job per task, progress and events,
cancel, versions with auto-deploy, the loss-curve PNG, isolation, and a failed publication registering
nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
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
from gateway.settings import Settings
from gateway.training.service import PreparedJob
from tests.platform.conftest import Api, Keys, auth

TRAINER = r"""
import json, sys, time
from pathlib import Path
from PIL import Image
spec_path = Path(sys.argv[1]); spec = json.loads(spec_path.read_text())
hp = spec["hyperparameters"]; steps = hp.get("max_steps", 3); out = spec_path.parent / spec["output_dir"]
def emit(**kw): print(json.dumps({"event": kw.pop("event"), **kw}), flush=True)
if hp.get("crash"):
    sys.stderr.write("RuntimeError: out of memory\n"); sys.exit(1)
emit(event="start", total_steps=steps, examples=len(spec["examples"]))
for step in range(1, steps + 1):
    time.sleep(hp.get("sleep", 0))
    emit(event="step", step=step, total_steps=steps, loss=1.0 / step, lr=0.001, eta_s=steps - step)
adapter = out / "adapter"; adapter.mkdir(parents=True, exist_ok=True)
config = {"base_model_name_or_path": spec["served_base_name"]}
(adapter / "adapter_config.json").write_text(json.dumps(config))
Image.new("RGB", (8, 8)).save(out / "loss_curve.png")
(out / "checkpoint-3").mkdir(exist_ok=True)
emit(event="done", adapter_dir=str(adapter))
"""


@pytest.fixture(scope="module")
async def train_client(
    db_url: str, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The gateway (no engine) with a base model directory, its trainer replaced by the stand-in."""
    root = tmp_path_factory.mktemp("train")
    model_dir = root / "tiny-base"
    model_dir.mkdir()
    script = root / "trainer.py"
    script.write_text(TRAINER)
    settings = Settings(
        data_dir=root / "data", database_url=db_url, key_cache_ttl_s=0.0, model=str(model_dir)
    )
    app = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=app) as client:
        service = app.state.services.training_service
        service.jobs.launch.command = lambda spec, resume: [sys.executable, str(script), str(spec)]
        service.publisher = StandInPublisher()  # no engine here: registration + evaluation run in integration
        yield client


class StandInPublisher:
    """The serving side of publishing, without an engine; ``publish`` is swapped by one test."""

    def __init__(self) -> None:
        self.publish: Any = stand_in_publish

    async def unpublish(self, task: Any, version: int) -> None:
        return None


async def stand_in_publish(task: Any, version: int, adapter_dir: Path, job_dir: Path) -> dict[str, Any]:
    """Checks what publishing is handed and returns metrics the version must store."""
    assert (adapter_dir / "adapter_config.json").exists() and (job_dir / "eval.json").exists()
    return {"new": {"score": 0.75}, "version": version}


async def colour_task(api: Api, n_samples: int = 5, **task_fields: Any) -> dict[str, Any]:
    dataset = await api.dataset(user_prompt="What colour? Style: {{style}}")
    color = await api.variable(dataset["id"], name="color", type="string", choices="red,blue", required=True)
    response = await api.client.patch(
        f"/vlm/v2/dataset/{dataset['id']}/",
        json={"result_template": '{"color": "{{color}}"}'},
        headers=api.headers,
    )
    assert response.status_code == 200, response.text
    for i in range(n_samples):
        colour = "red" if i % 2 else "blue"
        image = await api.image((255, 0, 0) if colour == "red" else (0, 0, 255))
        sample = await api.sample(
            dataset["id"], name=f"s{i}", image_ids=[image["id"]], input_meta_data={"style": "plain"}
        )
        await api.post(
            f"/vlm/v2/sample/{sample['id']}/add-variable-value/",
            {"dataset_variable": color["id"], "value": {"value": colour}},
            status=200,
        )
    return {**await api.task(datasets=[dataset["id"]], **task_fields), "dataset": dataset["id"]}


async def wait_for(client: AsyncTestClient[Any], key: str, job_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(300):
        job: dict[str, Any] = (await client.get(f"/vlm/v2/training-job/{job_id}/", headers=auth(key))).json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job stayed {job['status']}")


async def test_train_publishes_a_version_with_events_and_loss_curve(
    train_client: AsyncTestClient[Any], keys: Keys
) -> None:
    api = Api(train_client, keys.a)
    task = await colour_task(api)
    started = await api.post(f"/vlm/v2/task/{task['id']}/train/", {})
    assert started["status"] == "running" and started["object"] == "training.job"
    assert (started["train_samples"], started["test_samples"]) == (4, 1)  # seeded 80/20
    job = await wait_for(train_client, keys.a, started["id"], "succeeded", "failed")
    assert job["status"] == "succeeded", job
    assert (job["version"], job["progress"], job["model"]) == (1, 1.0, f"task-{task['id']}-v1")
    events = (await train_client.get(f"/vlm/v2/training-job/{job['id']}/events/", headers=api.headers)).json()
    kinds = [e["data"]["event"] for e in events["results"]]
    assert kinds[0] == "start" and kinds.count("step") == 3 and kinds[-1] == "done"
    assert events["results"][1]["type"] == "metrics" and "loss=1.0000" in events["results"][1]["message"]
    versions = (await train_client.get(f"/vlm/v2/task/{task['id']}/models/", headers=api.headers)).json()
    (v1,) = versions["results"]
    assert v1["version"] == 1 and v1["production"] is True and v1["train_samples"] == 4
    assert v1["metrics"] == {"new": {"score": 0.75}, "version": 1}
    task_now = (await train_client.get(f"/vlm/v2/task/{task['id']}/", headers=api.headers)).json()
    assert task_now["production_version"] == 1
    curve = await train_client.get(f"/vlm/v2/model/{v1['id']}/loss-curve/", headers=api.headers)
    assert curve.status_code == 200 and curve.headers["content-type"] == "image/png"
    assert curve.content.startswith(b"\x89PNG")
    stored = train_client.app.state.services.training_service.store.local_path("adapters") / task["id"] / "v1"
    assert (stored / "adapter" / "adapter_config.json").exists() and not list(stored.glob("checkpoint*"))


async def test_second_training_gets_version_2_without_auto_deploy(
    train_client: AsyncTestClient[Any], keys: Keys
) -> None:
    api = Api(train_client, keys.a)
    task = await colour_task(api, auto_deploy=False)
    for expected in (1, 2):
        job = await api.post(f"/vlm/v2/task/{task['id']}/train/", {"hyperparameters": {"max_steps": 1}})
        done = await wait_for(train_client, keys.a, job["id"], "succeeded", "failed")
        assert done["version"] == expected
    task_now = (await train_client.get(f"/vlm/v2/task/{task['id']}/", headers=api.headers)).json()
    assert task_now["production_version"] == 0
    path = f"/vlm/v2/task/{task['id']}/"
    moved = await train_client.patch(path, json={"production_version": 2}, headers=api.headers)
    assert moved.status_code == 200 and moved.json()["production_version"] == 2
    missing = await train_client.patch(path, json={"production_version": 3}, headers=api.headers)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "production_version"
    jobs = (await train_client.get(f"/vlm/v2/task/{task['id']}/training-jobs/", headers=api.headers)).json()
    assert [j["version"] for j in jobs["results"]] == [2, 1]


async def test_bad_data_is_refused_with_every_offending_sample(
    train_client: AsyncTestClient[Any], keys: Keys
) -> None:
    api = Api(train_client, keys.a)
    empty = await api.task(name="no datasets")
    response = await train_client.post(f"/vlm/v2/task/{empty['id']}/train/", headers=api.headers)
    assert response.status_code == 400 and "datasets" in response.json()["error"]["fields"]
    task = await colour_task(api, n_samples=3)
    no_image = await api.sample(task["dataset"], name="no image", input_meta_data={"style": "x"})
    image = await api.image((0, 255, 0))
    no_value = await api.sample(task["dataset"], name="no value", image_ids=[image["id"]])
    response = await train_client.post(f"/vlm/v2/task/{task['id']}/train/", headers=api.headers)
    assert response.status_code == 400, response.text
    fields = response.json()["error"]["fields"]
    assert set(fields) == {f"sample {no_image['id']}", f"sample {no_value['id']}"}
    assert "no images" in fields[f"sample {no_image['id']}"]
    assert "{{style}}" in fields[f"sample {no_value['id']}"]
    bad_body = await train_client.post(
        f"/vlm/v2/task/{task['id']}/train/", content=b'{"epochs": 3}', headers=api.headers
    )
    assert bad_body.status_code == 400 and "epochs" in bad_body.json()["error"]["message"]


async def test_one_active_job_per_task_and_cancel(train_client: AsyncTestClient[Any], keys: Keys) -> None:
    api = Api(train_client, keys.a)
    task = await colour_task(api)
    slow = {"hyperparameters": {"max_steps": 500, "sleep": 0.05}}
    job = await api.post(f"/vlm/v2/task/{task['id']}/train/", slow)
    again = await train_client.post(f"/vlm/v2/task/{task['id']}/train/", json=slow, headers=api.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "training_in_progress"
    other = Api(train_client, keys.b)
    hidden = await train_client.get(f"/vlm/v2/training-job/{job['id']}/", headers=other.headers)
    assert hidden.status_code == 404
    cancelled = await api.post(f"/vlm/v2/training-job/{job['id']}/cancel/", {}, status=200)
    assert cancelled["status"] == "cancelled" and cancelled["version"] is None
    twice = await train_client.post(f"/vlm/v2/training-job/{job['id']}/cancel/", headers=api.headers)
    assert twice.status_code == 409
    resumed = await api.post(f"/vlm/v2/training-job/{job['id']}/resume/", {}, status=200)
    assert resumed["status"] == "running"
    cancelled = await api.post(f"/vlm/v2/training-job/{job['id']}/cancel/", {}, status=200)
    assert cancelled["status"] == "cancelled"
    versions = (await train_client.get(f"/vlm/v2/task/{task['id']}/models/", headers=api.headers)).json()
    assert versions["count"] == 0


class RecordingJobPublisher:
    """Claims every task-less job and records what it is asked to serve."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def claims_job(self, job: db.TrainingJob) -> bool:
        return True

    async def publish(self, job: db.TrainingJob, result: Any, output_key: str) -> None:
        self.published.append((str(job.id), output_key))


async def test_a_taskless_job_starts_through_the_one_entry_point(
    train_client: AsyncTestClient[Any], db_url: str
) -> None:
    """``start_prepared`` with a job id (the fine-tuning API's way): the served base model, the prepared
    examples and seed in the spec, no task adapter name, the files written, 409 for a second start of the
    same job, and the result handed to the ``JobPublisher`` that claims the job."""
    service = train_client.app.state.services.training_service
    publisher = RecordingJobPublisher()
    service.job_publishers.append(publisher)
    try:
        async with open_database(db_url):  # the test's own connection to the gateway's database
            job_id = uuid.uuid4()
            await db.TrainingJob.create(
                id=job_id, task=None, status="queued", train_samples=1, test_samples=0, hyperparameters={}
            )
            prepared = PreparedJob(
                train=[{"prompt": "x"}], held_out=[], hyperparameters={"max_steps": 2}, seed=7,
                files={"plan.json": b"{}"},
            )  # fmt: skip
            job = await service.start_prepared(job_id, prepared)
            assert job.id == job_id and job.task_id is None
            spec = json.loads(service.jobs.spec_path(str(job_id)).read_text())
            assert spec["hyperparameters"] == {"seed": 7, "max_steps": 2}
            assert spec["examples"] == [{"prompt": "x"}]
            assert spec["served_base_name"] == service.served_base_name and "adapter_name" not in spec
            assert (service.jobs.job_dir(str(job_id)) / "plan.json").read_bytes() == b"{}"
            with pytest.raises(ConflictError):
                await service.start_prepared(job_id, prepared)  # its lease is held: not a second run
            for _ in range(300):
                row = await db.TrainingJob.get(id=job_id)
                if row.status in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.05)
            assert (row.status, row.error) == ("succeeded", None)
            assert publisher.published == [(str(job_id), f"jobs/{job_id}/output")]
    finally:
        service.job_publishers.remove(publisher)


async def test_crash_and_failed_publication_register_nothing(
    train_client: AsyncTestClient[Any], keys: Keys
) -> None:
    api = Api(train_client, keys.a)
    task = await colour_task(api)
    crashed = await api.post(f"/vlm/v2/task/{task['id']}/train/", {"hyperparameters": {"crash": True}})
    done = await wait_for(train_client, keys.a, crashed["id"], "succeeded", "failed")
    assert done["status"] == "failed" and "out of memory" in done["error"]
    service = train_client.app.state.services.training_service

    async def broken(*_args: Any) -> dict[str, Any]:
        raise RuntimeError("engine refused the adapter")

    service.publisher.publish = broken
    try:
        job = await api.post(f"/vlm/v2/task/{task['id']}/train/", {})
        done = await wait_for(train_client, keys.a, job["id"], "succeeded", "failed")
    finally:
        service.publisher.publish = stand_in_publish
    assert done["status"] == "failed" and "engine refused the adapter" in done["error"]
    versions = (await train_client.get(f"/vlm/v2/task/{task['id']}/models/", headers=api.headers)).json()
    assert versions["count"] == 0
    assert not (service.store.local_path("adapters") / task["id"]).exists() or not any(
        (service.store.local_path("adapters") / task["id"]).iterdir()
    )


async def test_deleting_a_task_removes_its_jobs_versions_and_files(
    train_client: AsyncTestClient[Any], keys: Keys
) -> None:
    api = Api(train_client, keys.a)
    task = await colour_task(api)
    service = train_client.app.state.services.training_service
    slow = await api.post(
        f"/vlm/v2/task/{task['id']}/train/", {"hyperparameters": {"max_steps": 500, "sleep": 0.05}}
    )
    refused = await train_client.delete(f"/vlm/v2/task/{task['id']}/", headers=api.headers)
    assert refused.status_code == 409  # cancel the training first
    await api.post(f"/vlm/v2/training-job/{slow['id']}/cancel/", {}, status=200)
    job = await api.post(f"/vlm/v2/task/{task['id']}/train/", {})
    await wait_for(train_client, keys.a, job["id"], "succeeded", "failed")
    adapters = service.store.local_path("adapters") / task["id"]
    assert adapters.is_dir() and service.jobs.job_dir(job["id"]).is_dir()
    gone = await train_client.delete(f"/vlm/v2/task/{task['id']}/", headers=api.headers)
    assert gone.status_code == 204, gone.text
    assert not adapters.exists() and not service.jobs.job_dir(job["id"]).exists()
    assert not service.jobs.job_dir(slow["id"]).exists()
    missing = await train_client.get(f"/vlm/v2/training-job/{job['id']}/", headers=api.headers)
    assert missing.status_code == 404


async def test_predict_refuses_bad_requests_before_any_engine_call(
    train_client: AsyncTestClient[Any], keys: Keys
) -> None:
    api = Api(train_client, keys.a)
    task = await colour_task(api)
    path = f"/vlm/v2/task/{task['id']}/predict/"
    image = {"_base64": "iVBORw0KGgo="}
    cases = [
        ({"images": [image]}, "input_meta_data"),  # the prompt needs {{style}}
        ({"images": [], "input_meta_data": {"style": "x"}}, "images"),
        ({"images": [{"_base64": "x", "_url": "http://a"}], "input_meta_data": {"style": "x"}}, "images[0]"),
        ({"images": [image], "input_meta_data": {"style": "x"}, "version": 7}, "version"),
        ({"images": [image], "input_meta_data": {"style": "x"}, "colour": 1}, "colour"),
    ]
    for body, field in cases:
        response = await train_client.post(path, json=body, headers=api.headers)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert field in (error.get("param") or "") + error["message"], (body, error)
    bare = await api.task(name="no template")
    response = await train_client.post(
        f"/vlm/v2/task/{bare['id']}/predict/", json={"images": [image]}, headers=api.headers
    )
    assert response.status_code == 400 and "result_template" in response.json()["error"]["message"]
    other = await train_client.post(path, json={"images": [image]}, headers=auth(keys.b))
    assert other.status_code == 404
