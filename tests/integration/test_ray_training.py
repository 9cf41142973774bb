"""Training on Ray: a local Ray head on 127.0.0.1, the model store on an S3 stand-in (moto on 127.0.0.1).

The gateway runs in-process (no engine: publishing is a stand-in that checks the adapter came from the
store; evaluation and serving on real vLLM are in test_scale_out.py). Each job is a real Ray job running
``python -m finetune job`` with the real trainer on the tiny model; it reads the spec and images from the
bucket and pushes checkpoints and the adapter back, so the gateway's data folder never holds them.
Covered: success with progress events, cancel through Ray, and a gateway restart re-attaching to the running
Ray job (one Ray job per attempt, never a second run).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.settings import Settings
from models_store.store import ObjectStore
from models_store.tiny_model import TinyModelSpec, cached_tiny_model
from tests.support.platform_task import build_colour_task
from tests.support.ray_head import ray_head
from tests.support.s3 import S3Server, s3_server

KEY = "ray-test-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}
BUCKET = "vlmgw-ray"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.make_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def ray_url(s3: S3Server) -> Iterator[str]:
    with ray_head(s3.env) as url:  # the workers reach the bucket with the head's AWS_* settings
        yield url


@pytest.fixture(scope="module")
def settings(s3: S3Server, ray_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("ray-gateway")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3.env.items():
            patch.setenv(name, value)  # the gateway's own store client
        yield Settings(
            data_dir=root / "data", database_url=f"sqlite://{root / 'db.sqlite3'}", api_keys=[KEY],
            model=str(cached_tiny_model(TinyModelSpec(pretrain_steps=300))), served_model_name="tiny",
            store_url=f"s3://{BUCKET}/vlmgw", training_backend="ray", ray_address=ray_url, ray_num_gpus=0,
            ray_num_cpus=1, ray_python=sys.executable, ray_worker_cache_dir=str(root / "worker-cache"),
            job_lease_ttl_s=3.0,
        )  # fmt: skip


class StandInPublisher:
    """Publishing without an engine: checks what it is handed (the adapter, fetched from the store)."""

    async def publish(self, task: Any, version: int, adapter_dir: Path, job_dir: Path) -> dict[str, Any]:
        assert (adapter_dir / "adapter_config.json").is_file() and (job_dir / "eval.json").is_file()
        return {"version": version}

    async def unpublish(self, task: Any, version: int) -> None:
        pass


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=app, timeout=60) as client:
        app.state.services.training_service.publisher = StandInPublisher()
        yield client


@pytest.fixture
async def task(gateway: AsyncTestClient[Any], tmp_path: Path) -> dict[str, Any]:
    return await build_colour_task(gateway, HEADERS, tmp_path, train_per_colour=1, test_per_colour=1)


async def job_until(client: AsyncTestClient[Any], job_id: str, done: Any, timeout_s: float = 300) -> Any:
    for _ in range(int(timeout_s * 2)):
        job = (await client.get(f"/vlm/v2/training-job/{job_id}/", headers=HEADERS)).json()
        if done(job):
            return job
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} did not get there: {job}")


def ray_jobs(url: str) -> list[dict[str, Any]]:
    return [j for j in httpx.get(url + "/api/jobs/", timeout=10).json() if j.get("submission_id")]


async def test_a_ray_job_trains_from_the_shared_store(
    gateway: AsyncTestClient[Any], task: dict[str, Any], settings: Settings, ray_url: str, s3: S3Server
) -> None:
    body = {"hyperparameters": {"max_steps": 20, "checkpoint_every": 5}}
    started = (await gateway.post(f"/vlm/v2/task/{task['id']}/train/", json=body, headers=HEADERS)).json()
    assert started["status"] == "running", started
    job = await job_until(gateway, started["id"], lambda j: j["status"] not in ("queued", "running"))
    assert job["status"] == "succeeded" and job["version"] == 1 and job["step"] == 20, job
    events = await gateway.get(f"/vlm/v2/training-job/{job['id']}/events/?page_size=500", headers=HEADERS)
    kinds = [e["data"].get("event") for e in events.json()["results"]]
    assert kinds.count("done") == 1 and "step" in kinds and "checkpoint" in kinds
    (ray_job,) = [j for j in ray_jobs(ray_url) if job["id"] in j["submission_id"]]
    assert ray_job["status"] == "SUCCEEDED" and "finetune job" in ray_job["entrypoint"]
    store = ObjectStore(settings.store_url or "", Path("/nonexistent"), env=s3.env)
    assert f"adapters/{task['id']}/v1/adapter/adapter_config.json" in store.keys(f"adapters/{task['id']}")
    assert store.exists(f"lora/task-{task['id']}-v1.json")
    assert store.keys(f"jobs/{job['id']}/output") == []  # checkpoints dropped once the version is published
    worker_cache = Path(settings.ray_worker_cache_dir)
    assert list((worker_cache / "images").rglob("*")), "the worker read the images from the store"
    assert not (settings.data_dir / "store").exists()  # nothing went through the gateway's own folder


async def test_cancel_stops_the_ray_job(
    gateway: AsyncTestClient[Any], task: dict[str, Any], ray_url: str
) -> None:
    body = {"hyperparameters": {"max_steps": 5000}}
    started = (await gateway.post(f"/vlm/v2/task/{task['id']}/train/", json=body, headers=HEADERS)).json()
    await job_until(gateway, started["id"], lambda j: j["step"] >= 1)
    cancelled = (await gateway.post(f"/vlm/v2/training-job/{started['id']}/cancel/", headers=HEADERS)).json()
    assert cancelled["status"] == "cancelled", cancelled
    (ray_job,) = [j for j in ray_jobs(ray_url) if started["id"] in j["submission_id"]]
    for _ in range(60):
        if ray_job["status"] == "STOPPED":
            break
        await asyncio.sleep(0.5)
        (ray_job,) = [j for j in ray_jobs(ray_url) if started["id"] in j["submission_id"]]
    assert ray_job["status"] == "STOPPED"


async def test_a_restarted_gateway_reattaches_to_the_running_ray_job(
    settings: Settings, tmp_path: Path, ray_url: str
) -> None:
    first = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=first, timeout=60) as client:
        task = await build_colour_task(client, HEADERS, tmp_path, train_per_colour=1, test_per_colour=1)
        body = {"hyperparameters": {"max_steps": 400, "checkpoint_every": 50}}
        started = (await client.post(f"/vlm/v2/task/{task['id']}/train/", json=body, headers=HEADERS)).json()
        await job_until(client, started["id"], lambda j: j["step"] >= 1)
    # the first gateway stopped: its Ray job goes on, the lease is free for the next gateway
    second = create_app(settings, engines=[], say=lambda _m: None)
    async with AsyncTestClient(app=second, timeout=60) as client:
        second.state.services.training_service.publisher = StandInPublisher()
        job = await job_until(client, started["id"], lambda j: j["status"] in ("succeeded", "failed"))
        assert job["status"] == "succeeded" and job["step"] == 400, job
        path = f"/vlm/v2/training-job/{job['id']}/events/?page_size=500"
        events = await client.get(path, headers=HEADERS)
        kinds = [e["data"].get("event") for e in events.json()["results"]]
        assert kinds.count("start") == 1 and kinds.count("done") == 1  # one run, each line recorded once
    submissions = [j for j in ray_jobs(ray_url) if started["id"] in j["submission_id"]]
    assert len(submissions) == 1 and submissions[0]["status"] == "SUCCEEDED"
    assert os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://127.0.0.1:")
