"""Publishing a recognition version: serve it, then measure it on the held-out images the job set aside.

Wraps the VLM publisher (``gateway.training.publication.VersionPublisher``): a job whose folder holds a
recognition plan is a recognition task's; its version's metrics are Ximilar's (accuracy, per-label
precision and recall, the confusion matrix, the failed test images), next to the base model's zero-shot
accuracy, plus the classifier spec (labels and their codes) that classification with this version uses.
Other jobs are published by the wrapped publisher unchanged.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import msgspec

from gateway.db import models as db
from gateway.platform_api.images import MIME
from gateway.recognition.classifier import Classifier, ClassifierSpec
from gateway.recognition.training import PLAN_FILE, HeldOutImage, RecognitionPlan
from gateway.training.publication import VersionPublisher
from models_store.image_store import inspect_image

THRESHOLD = 0.5  # multi_label: a label is predicted when its probability reaches this


class RecognitionPublisher:
    def __init__(self, inner: VersionPublisher, classifier: Classifier, concurrency: int = 4) -> None:
        self.inner = inner
        self.classifier = classifier
        self.concurrency = concurrency

    async def publish(self, task: db.Task, version: int, adapter_dir: Path, job_dir: Path) -> dict[str, Any]:
        plan_path = job_dir / PLAN_FILE
        if not plan_path.exists():
            return await self.inner.publish(task, version, adapter_dir, job_dir)
        plan = msgspec.json.decode(plan_path.read_bytes(), type=RecognitionPlan)
        name = self.inner.models.register(task.id, version, adapter_dir)
        uris = [await asyncio.to_thread(_data_uri, job_dir / image.path) for image in plan.held_out]
        new = await self.measure(name, plan, uris)
        base = await self.measure(self.inner.models.base, plan, uris)
        return {
            **new,
            "base_model": {"model": self.inner.models.base, "accuracy": base["accuracy"]},
            "classifier": msgspec.to_builtins(plan.spec),
        }

    async def unpublish(self, task: db.Task, version: int) -> None:
        await self.inner.unpublish(task, version)

    async def measure(self, model: str, plan: RecognitionPlan, uris: list[str]) -> dict[str, Any]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(uri: str) -> dict[str, float]:
            async with limit:
                pairs = await self.classifier.probabilities(model, plan.spec, uri)
                return {label.id: prob for label, prob in pairs}

        probs = await asyncio.gather(*(one(uri) for uri in uris))
        return score(plan.spec, plan.held_out, probs)


def _data_uri(path: Path) -> str:
    data = path.read_bytes()
    mime = MIME.get(inspect_image(data, max_pixels=1 << 40)[2], "image/png")
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def predicted(spec: ClassifierSpec, probs: dict[str, float]) -> set[str]:
    if spec.type == "multi_label":
        return {label_id for label_id, p in probs.items() if p >= THRESHOLD}
    return {max(probs, key=lambda label_id: probs[label_id])} if probs else set()


def score(spec: ClassifierSpec, images: list[HeldOutImage], probs: list[dict[str, float]]) -> dict[str, Any]:
    """Accuracy (exact label set), per-label precision and recall, confusion matrix, failed images."""
    names = {label.id: label.name for label in spec.labels}
    counts = {label.id: {"tp": 0, "fp": 0, "fn": 0, "tn": 0} for label in spec.labels}
    matrix = {a.name: {b.name: 0 for b in spec.labels} for a in spec.labels}
    failed: list[dict[str, Any]] = []
    for image, p in zip(images, probs, strict=True):
        truth, guess = set(image.labels), predicted(spec, p)
        for label_id, c in counts.items():
            key = ("t" if (label_id in truth) == (label_id in guess) else "f") + (
                "p" if label_id in guess else "n"
            )
            c[key] += 1
        if spec.type == "multi_class" and truth and guess:
            matrix[names[next(iter(truth))]][names[next(iter(guess))]] += 1
        if truth != guess:
            failed.append({"id": image.id, "labels": sorted(names[t] for t in truth),
                           "predicted": sorted(names[g] for g in guess),
                           "probabilities": {names[k]: round(v, 5) for k, v in p.items()}})  # fmt: skip
    total = len(images)
    per_label = {
        names[label_id]: {
            "precision": round(c["tp"] / (c["tp"] + c["fp"]), 4) if c["tp"] + c["fp"] else None,
            "recall": round(c["tp"] / (c["tp"] + c["fn"]), 4) if c["tp"] + c["fn"] else None,
            **c,
        }
        for label_id, c in counts.items()
    }
    out: dict[str, Any] = {
        "test_images": total,
        "accuracy": round((total - len(failed)) / total, 4) if total else None,
        "labels": per_label,
        "failed_images": failed,
    }
    if spec.type == "multi_class":
        out["confusion_matrix"] = matrix  # rows: true label, columns: predicted label
    return out
