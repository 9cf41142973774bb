"""Scale-out: two gateways, one PostgreSQL, an S3 store, one real vLLM engine each; nothing else shared.

Everything on loopback: a throw-away database on the PostgreSQL at 127.0.0.1:5432 (skipped, with the
reason, when none answers), moto as the S3 stand-in, and two vLLM servers (CPU build, tiny model) started
as the engine hosts of a deployment would start them: with vlm-gateway's resolver plugin reading adapters
from the bucket (``VLMGW_STORE_URL``), each with its own cache folder. Each gateway has its own data folder
and talks only to its own engine (``--engine-url``, ``--engine-adapter-source store``), so the only ways
from one gateway to the other are the database and the bucket.

The story: a task is created through gateway A and trained through gateway B (B owns the job); B is killed
(SIGKILL) mid-training and its data folder deleted; A takes the job over once B's lease expires, resumes
from the checkpoint B's trainer pushed to the bucket, finishes, evaluates and publishes version 1. B comes
back with an empty data folder, and both gateways answer ``task-<id>`` with the trained model, each through
its own engine, which fetched the adapter from the bucket.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from adapters.supervisor import EngineSpec, free_port, vllm_installed
from tests.integration.conftest import TINY_SPEC, GatewayProcess, stop_gateway, wait_healthy
from tests.platform.conftest import PG_HOST, PG_PORT, PG_USER, postgres_admin
from tests.support import colour_task, health
from tests.support.platform_task import COMPLEMENT, ask_templated, build_colour_task
from tests.support.s3 import S3Server, s3_server

KEY = "scale-test-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}
BUCKET = "vlmgw-scale"
LEASE_TTL_S = 4
STEPS = 120


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"vlmgw_scale_{uuid.uuid4().hex[:12]}"
    if not asyncio.run(_admin(f'CREATE DATABASE "{name}"')):
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT}: the scale-out test needs one")
    try:
        yield f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> bool:
    """Run one statement on the maintenance database; False when no server answers."""
    admin = await postgres_admin()
    if admin is None:
        return False
    try:
        await admin.execute(sql)
    finally:
        await admin.close()
    return True


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.make_bucket(BUCKET)
        yield server


@dataclass
class EngineHost:
    url: str
    proc: subprocess.Popen[bytes]
    cache: Path
    log_path: Path


def start_engine(root: Path, model_dir: Path, s3: S3Server) -> EngineHost:
    """A vLLM server as an engine host runs it: the resolver plugin on, reading the bucket."""
    port = free_port()
    spec = EngineSpec(model=str(model_dir), served_name="tiny", port=port, max_loras=2,
                      extra_args=["--max-model-len", "2048", "--max-num-seqs", "16",
                                  "--structured-outputs-config.backend", "outlines"])  # fmt: skip
    cache = root / "resolver-cache"
    env = {**spec.environment(), **s3.env, "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLMGW_STORE_URL": f"s3://{BUCKET}/platform", "VLMGW_STORE_CACHE_DIR": str(cache)}  # fmt: skip
    log_path = root / "engine.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(spec.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    return EngineHost(spec.url, proc, cache, log_path)


def wait_engine(engine: EngineHost, timeout_s: float = 900) -> None:
    if not health.wait_healthy(engine.url, timeout_s, engine.proc):
        state = "exited" if engine.proc.poll() is not None else f"not up after {timeout_s} s"
        pytest.fail(f"engine {state}: {engine.log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[list[EngineHost]]:
    if not vllm_installed():
        pytest.fail("vLLM is not installed: run `uv sync --extra cpu`")
    from models_store.tiny_model import cached_tiny_model

    model_dir = cached_tiny_model(TINY_SPEC)
    hosts = [start_engine(tmp_path_factory.mktemp(f"engine-{n}"), model_dir, s3) for n in "ab"]
    try:
        for host in hosts:
            wait_engine(host)
        yield hosts
    finally:
        for host in hosts:
            health.stop_group(host.proc)


class Cluster:
    """Starts gateways that share the database and the bucket, each with its own engine and data folder."""

    def __init__(self, root: Path, database: str, s3: S3Server, engines: list[EngineHost]) -> None:
        self.root, self.database, self.s3, self.engines = root, database, s3, engines
        self.running: list[GatewayProcess] = []

    def start(self, name: str, engine: EngineHost) -> GatewayProcess:
        from models_store.tiny_model import cached_tiny_model

        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {**os.environ, **self.s3.env, "VLMGW_JOB_LEASE_TTL_S": str(LEASE_TTL_S)}
        command = [sys.executable, "-m", "gateway", "serve", "--engine-url", engine.url,
                   "--model", str(cached_tiny_model(TINY_SPEC)), "--served-model-name", "tiny",
                   "--port", str(port), "--api-key", KEY, "--data-dir", str(data_dir),
                   "--database-url", self.database, "--store-url", f"s3://{BUCKET}/platform",
                   "--engine-adapter-source", "store"]  # fmt: skip
        log_path = self.root / f"{name}-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        gateway = GatewayProcess(f"http://127.0.0.1:{port}", proc, log_path, data_dir, Path())
        self.running.append(gateway)
        wait_healthy(gateway, 300)
        return gateway

    def stop_all(self) -> None:
        for gateway in self.running:
            stop_gateway(gateway)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, database: str, s3: S3Server, engines: list[EngineHost]
) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("gateways"), database, s3, engines)
    try:
        yield cluster
    finally:
        cluster.stop_all()


def job(gateway: GatewayProcess, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/vlm/v2/training-job/{job_id}/", headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def wait_job(gateway: GatewayProcess, job_id: str, done: Any, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = job(gateway, job_id)
        if done(state):
            return state
        time.sleep(0.3)
    pytest.fail(f"job {job_id} stuck: {job(gateway, job_id)}\n{gateway.log_tail()}")


@pytest.fixture(scope="module")
def trained(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Task through A, training through B, B killed mid-training, A finishes; B back with no data folder."""
    a = cluster.start("gateway-a", cluster.engines[0])
    b = cluster.start("gateway-b", cluster.engines[1])
    with httpx.Client(base_url=a.url, timeout=60) as http:
        task = asyncio.run(build_colour_task(http, HEADERS, tmp_path_factory.mktemp("images")))
    body = {"hyperparameters": {"max_steps": STEPS, "checkpoint_every": 20}}
    started = httpx.post(f"{b.url}/vlm/v2/task/{task['id']}/train/", json=body, headers=HEADERS, timeout=60)
    assert started.status_code == 201, started.text
    job_id = started.json()["id"]
    twice = httpx.post(f"{a.url}/vlm/v2/task/{task['id']}/train/", json=body, headers=HEADERS, timeout=60)
    assert twice.status_code == 409  # one active job per task, held by the database for every gateway
    wait_job(a, job_id, lambda j: j["step"] >= 45)  # two checkpoints (20, 40) are in the bucket
    os.killpg(b.proc.pid, signal.SIGKILL)  # the owner dies; its trainer gets SIGTERM from the kernel
    b.proc.wait(10)
    cluster.running.remove(b)
    shutil.rmtree(b.data_dir)  # nothing of B's may be needed to finish the job or to serve the result
    killed_at = job(a, job_id)["step"]
    done = wait_job(a, job_id, lambda j: j["status"] in ("succeeded", "failed", "cancelled"))
    assert done["status"] == "succeeded", f"{done}\n{a.log_tail()}"
    b_again = cluster.start("gateway-b-again", cluster.engines[1])
    return {"a": a, "b": b_again, "task": task, "job": done, "killed_at": killed_at}


def test_the_surviving_gateway_takes_the_job_over_and_finishes_it(trained: dict[str, Any]) -> None:
    a, job_state = trained["a"], trained["job"]
    assert job_state["version"] == 1 and job_state["step"] == STEPS
    url = f"{a.url}/vlm/v2/training-job/{job_state['id']}/events/?page_size=500"
    events = httpx.get(url, headers=HEADERS, timeout=30).json()["results"]
    taken = [e for e in events if e["data"].get("event") == "resumed"]
    assert len(taken) == 1 and "taken over from" in taken[0]["message"], taken
    starts = [e["data"] for e in events if e["data"].get("event") == "start"]
    assert len(starts) == 2 and starts[0].get("resumed_from_step") is None
    # from a checkpoint B's trainer pushed: the one at step 40 at least (B was killed past step 45), or the
    # one it wrote on the kernel's SIGTERM when B died
    assert 40 <= starts[1]["resumed_from_step"] < STEPS, (starts, trained["killed_at"])
    (version,) = httpx.get(f"{a.url}/vlm/v2/task/{trained['task']['id']}/models/", headers=HEADERS,
                           timeout=30).json()["results"]  # fmt: skip
    assert version["metrics"]["new"]["score"] > version["metrics"]["base"]["score"], version["metrics"]


@pytest.mark.parametrize("which", ["a", "b"])
def test_both_gateways_answer_with_the_trained_model(
    trained: dict[str, Any], which: str, tmp_path: Path, engines: list[EngineHost]
) -> None:
    gateway = trained[which]
    model = f"task-{trained['task']['id']}"
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    assert model in {m.id for m in client.models.list().data}
    hits = 0
    for path, colour in colour_task.write_images(tmp_path, 1, seed=3):
        answer = ask_templated(client, model, path)
        assert answer.model == f"{model}-v1"
        hits += json.loads(answer.choices[0].message.content or "")["color"] == COMPLEMENT[colour]
    assert hits >= 4, f"only {hits} of 6 right through gateway {which}"
    engine = engines[0 if which == "a" else 1]
    served = httpx.get(engine.url + "/v1/models", timeout=10).json()["data"]
    (adapter,) = [m for m in served if m["id"] == f"{model}-v1"]
    assert adapter["root"].startswith(str(engine.cache))  # the engine's own copy, fetched from the bucket
