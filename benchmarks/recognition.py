"""Image recognition (Ximilar's API): accuracy and latency of the chosen method against the alternatives.

Starts one gateway (``vlmgw serve --model``, spawning vLLM CPU) on the briefly pre-trained tiny model,
builds a multi_class task over the recognition API (labels, ``--per-label`` jittered solid-colour training
images each, or solid shapes with ``--task shapes``), trains it (the VLM training path: LoRA, 80/20 split per
label), then classifies ``--test-per-label`` new images per label three ways:

- ``lora + code logprobs`` (the gateway's method): the trained version answers one constrained code token;
  probabilities are the codes' token probabilities.
- ``base zero-shot``: the same prompt and scoring on the base model (no training).
- ``embedding nearest-centroid``: a light classifier on pooled vision-encoder embeddings (the
  ``descriptor: 1`` vectors): centroids of the training images' descriptors, cosine nearest centroid.

Latency is per ``/recognition/v2/classify/`` request, 1 record and 10 records. Only loopback traffic.

    uv run python benchmarks/recognition.py [--task colours|shapes] [--per-label 24] [--test-per-label 10]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from adapters.supervisor import free_port
from models_store.tiny_model import TinyModelSpec, cached_tiny_model
from models_store.tiny_pretrain import COLOURS

KEY = "bench-recognition"
COLOUR_LABELS = ["red", "green", "blue", "yellow"]
SHAPE_LABELS = ["circle", "square", "triangle"]


def colour_png(name: str, rng: random.Random) -> bytes:
    rgb = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[name])
    return _png(Image.new("RGB", (56, 56), rgb))  # type: ignore[arg-type]


def shape_png(name: str, rng: random.Random) -> bytes:
    img = Image.new("RGB", (56, 56), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    r, cx, cy = rng.randint(12, 20), rng.randint(22, 34), rng.randint(22, 34)
    fill = (rng.randint(0, 120), rng.randint(0, 120), rng.randint(0, 120))
    if name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif name == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return _png(img)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Gateway:
    def __init__(self, work: Path) -> None:
        model = cached_tiny_model(TinyModelSpec(pretrain_steps=300))
        self.port = free_port()
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLMGW_DATA_DIR": str(work)}
        cmd = [sys.executable, "-m", "gateway", "serve", "--model", str(model), "--served-model-name", "tiny",
               "--port", str(self.port), "--api-key", KEY, "--", "--max-model-len", "2048"]  # fmt: skip
        self.log = (work / "gateway.log").open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=300,
                                 headers={"Authorization": f"Token {KEY}"})  # fmt: skip
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gateway exited ({self.proc.returncode}); see {work / 'gateway.log'}")
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise SystemExit("gateway did not start")

    def call(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code != status:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)


def train(
    gw: Gateway, labels: list[str], make: Any, per_label: int
) -> tuple[dict[str, Any], dict[str, list[bytes]]]:
    rng = random.Random(1)
    task = gw.call("POST", "/recognition/v2/task/", 201, data={"name": "benchmark"})
    images: dict[str, list[bytes]] = {}
    for name in labels:
        label = gw.call("POST", "/recognition/v2/label/", 201, data={"name": name})
        gw.call("POST", f"/recognition/v2/task/{task['id']}/add-label/", data={"label_id": label["id"]})
        images[name] = [make(name, rng) for _ in range(per_label)]
        for data in images[name]:
            gw.call(
                "POST",
                "/recognition/v2/training-image/",
                201,
                json={"_base64": b64(data), "labels": [label["id"]]},
            )
    started = time.monotonic()
    job = gw.call("POST", f"/recognition/v2/task/{task['id']}/train/", 201)
    while job["status"] in ("queued", "running"):
        time.sleep(2)
        job = gw.call("GET", f"/vlm/v2/training-job/{job['id']}/")
    if job["status"] != "succeeded":
        raise SystemExit(f"training {job['status']}: {job['error']}")
    took = time.monotonic() - started
    print(f"training: {took:.1f} s (job, publication, held-out evaluation), {job['train_samples']} train / "
          f"{job['test_samples']} held-out images, {job['step']} steps")  # fmt: skip
    return task, images


def classify(
    gw: Gateway, task: str, records: list[bytes], descriptor: bool = False
) -> tuple[float, list[Any]]:
    body = {"task_id": task, "records": [{"_base64": b64(r)} for r in records], "descriptor": int(descriptor)}
    started = time.monotonic()
    answer = gw.call("POST", "/recognition/v2/classify/", json=body)
    return time.monotonic() - started, answer["records"]


def zero_shot(gw: Gateway, task: dict[str, Any], test: list[tuple[str, bytes]]) -> tuple[float, list[float]]:
    """The base model on the trained version's prompt and codes (what ``Classifier`` sends), no training."""
    import msgspec

    from gateway.openai_api.protocol import ChatCompletion
    from gateway.recognition.classifier import ClassifierSpec, choice_prompt, code_probabilities

    (version,) = gw.call("GET", f"/vlm/v2/task/{task['id']}/models/")["results"]
    spec = msgspec.convert(version["metrics"]["classifier"], ClassifierSpec)
    codes = [label.code for label in spec.labels]
    hits, times = 0, []
    for truth, data in test:
        content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(data)}},
                   {"type": "text", "text": choice_prompt(spec)}]  # fmt: skip
        body = {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 1,
                "temperature": 0, "logprobs": True, "top_logprobs": len(codes),
                "structured_outputs": {"choice": codes}}  # fmt: skip
        started = time.monotonic()
        answer = msgspec.convert(gw.call("POST", "/v1/chat/completions", json=body), ChatCompletion)
        times.append(time.monotonic() - started)
        probs = code_probabilities(answer, codes)
        best = max(spec.labels, key=lambda label: probs[label.code])
        hits += best.name == truth
    return hits / len(test), times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=["colours", "shapes"], default="colours")
    parser.add_argument("--per-label", type=int, default=24)
    parser.add_argument("--test-per-label", type=int, default=10)
    args = parser.parse_args()
    labels, make = (COLOUR_LABELS, colour_png) if args.task == "colours" else (SHAPE_LABELS, shape_png)
    with tempfile.TemporaryDirectory(prefix="bench-recognition-") as tmp:
        gw = Gateway(Path(tmp))
        try:
            run(gw, labels, make, args)
        finally:
            gw.stop()


def run(gw: Gateway, labels: list[str], make: Any, args: argparse.Namespace) -> None:
    task, train_images = train(gw, labels, make, args.per_label)
    rng = random.Random(99)
    test = [(name, make(name, rng)) for name in labels for _ in range(args.test_per_label)]
    # The gateway's method, one record per request, then 10 per request.
    singles, hits = [], 0
    for truth, data in test:
        seconds, (record,) = classify(gw, task["id"], [data])
        singles.append(seconds)
        hits += record["best_label"]["name"] == truth
    batches = [classify(gw, task["id"], [d for _, d in test[i : i + 10]])[0] for i in range(0, len(test), 10)]
    base_accuracy, base_times = zero_shot(gw, task, test)
    # Nearest centroid on descriptors (the first call loads the vision encoder: not timed).
    classify(gw, task["id"], [test[0][1]], descriptor=True)
    centroids = {}
    for name, images in train_images.items():
        vectors = [r["_descriptor"] for i in range(0, len(images), 10)
                   for r in classify(gw, task["id"], images[i:i + 10], descriptor=True)[1]]  # fmt: skip
        centroids[name] = [sum(col) / len(vectors) for col in zip(*vectors, strict=True)]
    nc_hits, nc_times = 0, []
    for truth, data in test:
        seconds, (record,) = classify(gw, task["id"], [data], descriptor=True)
        nc_times.append(seconds)
        v = record["_descriptor"]
        best = max(centroids, key=lambda n: sum(a * b for a, b in zip(v, centroids[n], strict=True)))
        nc_hits += best == truth
    n = len(test)
    (version,) = gw.call("GET", f"/vlm/v2/task/{task['id']}/models/")["results"]
    print(f"held-out split at training: trained {version['metrics']['accuracy']:.2%}, "
          f"base zero-shot {version['metrics']['base_model']['accuracy']:.2%} "
          f"({version['metrics']['test_images']} images)")  # fmt: skip
    shape = f"{len(labels)} labels, {args.per_label} training images per label, {n} new test images"
    print(f"\n{args.task}: {shape}\n")
    print("| method | accuracy | p50 ms / 1-record request | p50 ms / 10-record request |")
    print("|---|---|---|---|")
    print(f"| LoRA + code logprobs (chosen) | {hits / n:.1%} | {1000 * statistics.median(singles):.0f} | "
          f"{1000 * statistics.median(batches):.0f} |")  # fmt: skip
    print(f"| base zero-shot (same prompt, no training) | {base_accuracy:.1%} | "
          f"{1000 * statistics.median(base_times):.0f} (chat call) | |")  # fmt: skip
    print(f"| embedding nearest-centroid | {nc_hits / n:.1%} | {1000 * statistics.median(nc_times):.0f} "
          "(classify + descriptor) | |")  # fmt: skip


if __name__ == "__main__":
    main()
