"""Training a recognition task on the VLM training path: the rule check, the seeded split, the examples.

Ximilar's rule: at least two labels, each with at least 20 training images. The images of each label are
split 80/20 (seeded: the same data and seed give the same split), the 80 % become training examples in the
classifier's own prompts (``gateway.recognition.classifier``) and the 20 % are the held-out images the new
version is measured on when it is published (``gateway.recognition.publication``). The job is an ordinary
training job of the task (``TrainingService.start_prepared``): same leases, events, versions and adapters.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.db import models as db
from gateway.errors import FieldsInvalidError
from gateway.recognition import schemas as wire
from gateway.recognition.classifier import (
    MAX_LABELS,
    NO,
    YES,
    ClassifierSpec,
    choice_prompt,
    spec_for,
    tag_prompt,
)
from gateway.recognition.entities import RecognitionEntities
from gateway.training.data import FROM_JOB_FOLDER
from gateway.training.service import PreparedJob, TrainingService
from models_store.image_store import image_key

MIN_LABELS = 2
MIN_IMAGES_PER_LABEL = 20
TEST_SHARE = 0.2
PLAN_FILE = "recognition.json"
# 60 steps left 4 colours at 75 % held-out accuracy; 150 reached 100 % (benchmarks/README.md).
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {"max_steps": 150}


class HeldOutImage(msgspec.Struct):
    id: str
    path: str  # relative to the job's folder
    labels: list[str]  # label ids


class RecognitionPlan(msgspec.Struct):
    """Written to the job's folder: what the new version classifies into and what it is measured on."""

    spec: ClassifierSpec
    held_out: list[HeldOutImage]


@dataclass
class LabelledImage:
    id: uuid.UUID
    path: str
    labels: set[uuid.UUID] = field(default_factory=set)


async def labelled_images(
    task: db.RecognitionTask, labels: list[db.RecognitionLabel]
) -> dict[uuid.UUID, LabelledImage]:
    """The workspace's training images that carry at least one of the task's labels."""
    ids = [label.id for label in labels]
    links = await db.TrainingImageLabel.filter(label_id__in=ids).prefetch_related("image__image")
    images: dict[uuid.UUID, LabelledImage] = {}
    for link in links:
        image = link.image
        if image.workspace_id != task.workspace_id:
            continue
        entry = images.setdefault(
            image.id, LabelledImage(image.id, FROM_JOB_FOLDER + image_key(image.image.sha256))
        )
        entry.labels.add(link.label_id)
    return images


def check_rules(
    task_type: str, labels: list[db.RecognitionLabel], images: dict[uuid.UUID, LabelledImage]
) -> None:
    """400 naming every problem: too few labels, labels with too few images, too many labels, and (for
    multi_class, whose labels exclude each other) images that carry two of the task's labels."""
    problems: dict[str, str] = {}
    if len(labels) < MIN_LABELS:
        problems["labels"] = f"the task has {len(labels)} label(s); training needs at least {MIN_LABELS}"
    if task_type == "multi_class" and len(labels) > MAX_LABELS:
        problems["labels"] = f"a multi_class task can have at most {MAX_LABELS} labels (it has {len(labels)})"
    for label in labels:
        count = sum(label.id in image.labels for image in images.values())
        if count < MIN_IMAGES_PER_LABEL:
            problems[f"label {label.name}"] = (
                f"has {count} training image(s); every label needs at least {MIN_IMAGES_PER_LABEL}"
            )
    if task_type == "multi_class":
        doubles = [str(i.id) for i in images.values() if len(i.labels) > 1]
        if doubles:
            problems["training images"] = (
                f"{len(doubles)} image(s) carry two labels of this multi_class task (its labels exclude "
                "each other): " + ", ".join(doubles[:5])
            )
    if problems:
        raise FieldsInvalidError(problems, message=f"The task cannot be trained ({len(problems)} problems)")


def split(
    labels: list[db.RecognitionLabel], images: dict[uuid.UUID, LabelledImage], seed: int
) -> set[uuid.UUID]:
    """The held-out images: 20 % of each label's images (at least one), seeded per label. An image of
    several labels is held out when any of its labels picks it."""
    held_out: set[uuid.UUID] = set()
    for label in labels:
        own = sorted((i.id for i in images.values() if label.id in i.labels), key=str)
        random.Random(f"{seed}:{label.id}").shuffle(own)
        held_out.update(own[: max(1, round(len(own) * TEST_SHARE))])
    return held_out


def examples(spec: ClassifierSpec, image: LabelledImage) -> list[dict[str, Any]]:
    """The training examples of one image, in the classifier's prompts (``finetune.spec.Example``)."""

    def example(user: str, target: str, suffix: str = "") -> dict[str, Any]:
        return {"sample_id": f"{image.id}{suffix}", "system": None, "user": user, "images": [image.path],
                "image_selection": "ordered", "target": target}  # fmt: skip

    if spec.type == "multi_label":
        return [
            example(
                tag_prompt(label.name), YES if uuid.UUID(label.id) in image.labels else NO, f":{label.code}"
            )
            for label in spec.labels
        ]
    (label,) = [label for label in spec.labels if uuid.UUID(label.id) in image.labels]
    return [example(choice_prompt(spec), label.code)]


class RecognitionTraining:
    def __init__(self, entities: RecognitionEntities, training: TrainingService) -> None:
        self.entities = entities
        self.training = training

    async def start(self, ws: uuid.UUID, task_id: uuid.UUID, body: wire.TrainBody) -> db.TrainingJob:
        row = await self.entities.task_row(ws, task_id)
        links = await db.RecognitionTaskLabel.filter(task_id=row.id).prefetch_related("label")
        labels = sorted((link.label for link in links), key=lambda label: (label.name, str(label.id)))
        images = await labelled_images(row, labels)
        check_rules(row.type, labels, images)
        spec = spec_for(row.type, [(label.id, label.name) for label in labels])
        held = split(labels, images, body.seed)
        ordered = sorted(images.values(), key=lambda i: str(i.id))
        train = [e for image in ordered if image.id not in held for e in examples(spec, image)]
        held_out = [e for image in ordered if image.id in held for e in examples(spec, image)]
        plan = RecognitionPlan(
            spec=spec,
            held_out=[
                HeldOutImage(id=str(i.id), path=i.path, labels=sorted(str(x) for x in i.labels))
                for i in ordered
                if i.id in held
            ],
        )
        task = await db.Task.get(id=row.task_id)
        prepared = PreparedJob(
            train=train, held_out=held_out, seed=body.seed,
            hyperparameters={**DEFAULT_HYPERPARAMETERS, **body.hyperparameters},
            files={PLAN_FILE: msgspec.json.encode(plan)},
        )  # fmt: skip
        return await self.training.start_prepared(task, prepared)
