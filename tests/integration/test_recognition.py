"""Ximilar's recognition API end to end on real vLLM: a user's script, unchanged but for host and key.

Labels and a multi_class task made with forms (``curl -F`` as the page shows), 24 jittered solid-colour
images per label uploaded as multipart files and as ``_base64``, labelled, trained (the VLM training path:
job, events, version), then ``/v2/classify`` on new held-out images: the right best label, probabilities
that sum to 1, a bad record answered on its own, descriptors whose nearest neighbours share the label, and
the page's own classify request replayed (its ``_url`` served from loopback).
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
import time
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from models_store.tiny_pretrain import COLOURS
from tests.integration.conftest import GatewayProcess, keys_cli
from tests.support.http_server import ThreadedServer
from tests.support.ximilar_recognition_seed import replay_args, seed_requests

LABELS = ["red", "green", "blue"]
PER_LABEL = 24


def colour_png(name: str, rng: random.Random, size: int = 56) -> bytes:
    rgb = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[name])
    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, "PNG")  # type: ignore[arg-type]
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Ximilar:
    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=120)

    def call(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None


@pytest.fixture(scope="module")
def trained(gateway: GatewayProcess) -> dict[str, Any]:
    key = keys_cli(gateway, "create", "--user", "recogniser", "--workspace", "recognition-ws")
    api = Ximilar(gateway.url, key)
    task = api.call("POST", "/recognition/v2/task/", 201, files={"name": (None, "colours")})
    assert task["production_version"] == -1 and task["type"] == "multi_class"
    labels = {}
    rng = random.Random(1)
    for name in LABELS:
        label = api.call("POST", "/recognition/v2/label/", 201, data={"name": name})
        api.call("POST", f"/recognition/v2/task/{task['id']}/add-label/", data={"label_id": label["id"]})
        labels[name] = label
        for i in range(PER_LABEL):
            data = colour_png(name, rng)
            if i % 2:  # a multipart file, then labelled as the page shows
                image = api.call("POST", "/recognition/v2/training-image/", 201,
                                 files={"img_path": ("x.png", data, "image/png")})  # fmt: skip
                api.call("POST", f"/recognition/v2/training-image/{image['id']}/add-label/",
                         files={"label_id": (None, label["id"])})  # fmt: skip
            else:  # JSON with _base64 and the label given at once
                api.call("POST", "/recognition/v2/training-image/", 201,
                         json={"_base64": b64(data), "labels": [label["id"]]})  # fmt: skip
    # Before training: classify is refused with a clear 400.
    first = {"_base64": b64(colour_png("red", rng))}
    early = api.http.post("/recognition/v2/classify/", json={"task_id": task["id"], "records": [first]})
    assert early.status_code == 400 and early.json()["error"]["code"] == "task_not_trained", early.text
    job = api.call("POST", f"/recognition/v2/task/{task['id']}/train/", 201)
    assert (job["train_samples"], job["test_samples"]) == (3 * 19, 3 * 5)  # 80/20 per label (24 -> 19/5)
    deadline = time.monotonic() + 600
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(2)
        job = api.call("GET", f"/vlm/v2/training-job/{job['id']}/")  # the same job system as VLM training
    assert job["status"] == "succeeded", f"{job}\n{gateway.log_tail()}"
    return {"api": api, "task": task, "labels": labels, "job": job}


def test_training_records_a_version_with_ximilars_metrics(trained: dict[str, Any]) -> None:
    api, task = trained["api"], trained["task"]
    assert api.call("GET", f"/recognition/v2/task/{task['id']}/")["production_version"] == 1
    (version,) = api.call("GET", f"/vlm/v2/task/{task['id']}/models/")["results"]
    metrics = version["metrics"]
    assert metrics["test_images"] == 15 and metrics["accuracy"] >= 0.8, metrics
    assert set(metrics["labels"]) == set(LABELS)
    assert all({"precision", "recall"} <= set(m) for m in metrics["labels"].values())
    matrix = metrics["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == 15
    assert len(metrics["failed_images"]) == round(15 * (1 - metrics["accuracy"]))
    assert "accuracy" in metrics["base_model"]
    events = api.call("GET", f"/vlm/v2/training-job/{trained['job']['id']}/events/?page_size=500")["results"]
    assert any(e["type"] == "metrics" for e in events)


def test_classify_names_the_right_label_on_new_images(trained: dict[str, Any]) -> None:
    api, task = trained["api"], trained["task"]
    rng = random.Random(7)
    truth = [name for name in LABELS for _ in range(3)]
    records = [{"_base64": b64(colour_png(name, rng)), "_id": i} for i, name in enumerate(truth)]
    hits = 0
    for start in range(0, len(records), 10):
        answer = api.call("POST", "/recognition/v2/classify/",
                          json={"task_id": task["id"], "records": records[start:start + 10]})  # fmt: skip
        assert answer["status"] == {"code": 200, "text": "OK"} and answer["version"] == 1
        assert answer["task_id"] == task["id"] and "processing time" in answer["statistics"]
        for record in answer["records"]:
            assert record["_status"]["code"] == 200 and (record["_width"], record["_height"]) == (56, 56)
            probs = [label["prob"] for label in record["labels"]]
            assert probs == sorted(probs, reverse=True) and math.isclose(sum(probs), 1.0, abs_tol=1e-3)
            assert record["best_label"] == record["labels"][0]
            assert {label["id"] for label in record["labels"]} == {
                v["id"] for v in trained["labels"].values()
            }
            assert "_base64" not in record
            hits += record["best_label"]["name"] == truth[record["_id"]]
    assert hits >= 8, f"{hits}/9 right"


def test_a_bad_record_gets_its_own_status(trained: dict[str, Any]) -> None:
    api, task = trained["api"], trained["task"]
    good = b64(colour_png("blue", random.Random(3)))
    answer = api.call("POST", "/recognition/v2/classify/", json={"task_id": task["id"], "records": [
        {"_base64": good}, {"_base64": b64(b"not an image")}, {"_url": "ftp://example.invalid/x.png"},
    ]})  # fmt: skip
    first, corrupt, bad_url = answer["records"]
    assert first["_status"]["code"] == 200 and first["best_label"]["name"] == "blue"
    assert corrupt["_status"]["code"] == 400 and "image" in corrupt["_status"]["text"]
    assert bad_url["_status"]["code"] == 400 and bad_url["_url"] == "ftp://example.invalid/x.png"


def test_descriptors_find_images_of_the_same_label(trained: dict[str, Any]) -> None:
    api, task = trained["api"], trained["task"]
    rng = random.Random(11)
    truth = [name for name in LABELS for _ in range(3)]
    records = [{"_base64": b64(colour_png(name, rng))} for name in truth]
    answer = api.call("POST", "/recognition/v2/classify/",
                      json={"task_id": task["id"], "records": records, "descriptor": 1})  # fmt: skip
    vectors = [r["_descriptor"] for r in answer["records"]]
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) >= 16
    for i, v in enumerate(vectors):
        sims = [(sum(a * b for a, b in zip(v, w, strict=True)), j) for j, w in enumerate(vectors) if j != i]
        assert truth[max(sims)[1]] == truth[i], f"nearest neighbour of a {truth[i]} image is not {truth[i]}"


def test_the_pages_classify_request_replayed(trained: dict[str, Any]) -> None:
    api, task = trained["api"], trained["task"]
    png = colour_png("green", random.Random(5))

    async def image(_request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    (classify,) = [r for r in seed_requests() if r.what == "classify"]
    with ThreadedServer({"/green.png": image}) as server:
        method, path, kw = replay_args(classify, {"__API_TOKEN__": api.key})
        body = json.loads(kw.pop("content"))  # type: ignore[arg-type]
        body.update(task_id=task["id"], version=1)  # the page's id is not a UUID (it has an `x`)
        body["records"][0]["_url"] = server.url("/green.png")
        response = httpx.request(method, api.http.base_url.join(path), json=body, timeout=120, **kw)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    (record,) = response.json()["records"]
    assert record["_url"] == server.url("/green.png") and record["best_label"]["name"] == "green"


def test_limits_and_other_workspaces(trained: dict[str, Any], gateway: GatewayProcess) -> None:
    api, task = trained["api"], trained["task"]
    record = {"_base64": b64(colour_png("red", random.Random(2)))}
    eleven = api.http.post(
        "/recognition/v2/classify/", json={"task_id": task["id"], "records": [record] * 11}
    )
    assert eleven.status_code == 400 and eleven.json()["error"]["param"] == "records", eleven.text
    missing = api.http.post("/recognition/v2/classify/",
                            json={"task_id": task["id"], "version": 9, "records": [record]})  # fmt: skip
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "version"
    other = Ximilar(
        gateway.url, keys_cli(gateway, "create", "--user", "stranger", "--workspace", "elsewhere")
    )
    for method, path, body in [
        ("POST", "/recognition/v2/classify/", {"task_id": task["id"], "records": [record]}),
        ("GET", f"/recognition/v2/task/{task['id']}/", None),
        ("POST", f"/recognition/v2/task/{task['id']}/train/", None),
        ("GET", f"/recognition/v2/label/{trained['labels']['red']['id']}/", None),
    ]:
        response = other.http.request(method, path, json=body)
        assert response.status_code == 404, f"{method} {path}: {response.status_code} {response.text}"
