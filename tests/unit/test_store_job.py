"""A training worker's side of the store (``finetune.store_job``), without torch: which images a spec
needs, the job folder materialised next to them, and checkpoints pushed complete (trainer state last) with
the ones the trainer dropped removed from the bucket too. On a local moto S3 server (127.0.0.1)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetune.checkpoint import STATE_FILE
from finetune.store_job import SyncingProgress, local_spec, materialise_job, spec_image_keys
from models_store.store import ObjectStore
from tests.support.s3 import S3Server, s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.make_bucket("store-job")
        yield server


def test_spec_images_are_store_keys_from_the_job_folder() -> None:
    spec = {"examples": [{"images": ["../../images/ab/cd/x", "/abs/y.png"]}],
            "held_out": [{"images": ["../../images/ef/gh/z"]}]}  # fmt: skip
    assert spec_image_keys("jobs/j1", spec) == ["images/ab/cd/x", "images/ef/gh/z"]


def test_a_worker_materialises_the_job_and_pushes_checkpoints(s3: S3Server, tmp_path: Path) -> None:
    url = f"s3://store-job/{tmp_path.name}"
    gateway = ObjectStore(url, tmp_path / "gateway-cache", env=s3.env)
    gateway.write("images/ab/cd/x", b"png")
    spec = {"base_model": "/models/tiny", "output_dir": "output",
            "examples": [{"user": "u", "target": "t", "images": ["../../images/ab/cd/x"]}]}  # fmt: skip
    gateway.write("jobs/j1/spec.json", json.dumps(spec).encode())
    worker = ObjectStore(url, tmp_path / "worker-cache", env=s3.env)
    folder = materialise_job(worker, "jobs/j1")
    assert (folder / "../../images/ab/cd/x").read_bytes() == b"png" and local_spec(
        folder
    ) == folder / "spec.json"

    progress = SyncingProgress(worker, "jobs/j1/output", folder / "output", out=io.StringIO(), human=False)
    for step in (10, 20, 30):
        checkpoint = folder / "output" / "checkpoints" / f"step-{step:07d}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "adapter_model.safetensors").write_bytes(b"w")
        (checkpoint / STATE_FILE).write_bytes(b"s")
        if step == 30:  # the trainer keeps the two newest
            import shutil

            shutil.rmtree(folder / "output" / "checkpoints" / "step-0000010")
        progress.checkpoint(step=step, path=str(checkpoint))
    steps = {k.split("/")[4] for k in gateway.keys("jobs/j1/output/checkpoints")}
    assert steps == {"step-0000020", "step-0000030"}
    assert gateway.exists(f"jobs/j1/output/checkpoints/step-0000030/{STATE_FILE}")
    assert json.loads(progress.out.getvalue().splitlines()[-1])["event"] == "checkpoint"  # type: ignore[attr-defined]
