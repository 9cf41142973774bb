"""A task's training data from the database: examples per dataset, the held-out split, and every problem.

The train endpoint refuses to start when any sample is bad (no images, values that break their variable's
rules, a template that does not render, a prompt placeholder the sample's metadata lacks) and lists each
offending sample, so the user can fix them all at once. Image paths are the images' store keys relative to
a job's folder (``jobs/<id>/``): ``../../images/ab/cd/<sha256>``, so they hold wherever the store is
mirrored (the store's own folder, a gateway's cache, a training worker's cache).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from finetune.examples import SampleRecord, TrainingExample, build_examples
from finetune.templates import ResultTemplate
from finetune.variables import VariableSpec
from gateway.db import models as db
from gateway.platform_api.variable_rules import definition, template_variables
from gateway.platform_api.variables import unwrap
from models_store.image_store import ImageStore, image_key

FROM_JOB_FOLDER = "../../"  # from jobs/<id>/ back to the store's root


@dataclass
class DatasetTemplate:
    """A dataset's compiled result template and the prompts its samples use."""

    dataset_id: uuid.UUID
    template: ResultTemplate
    system_prompt: str | None
    user_prompt: str
    variables: list[VariableSpec]


@dataclass
class TaskData:
    train: list[TrainingExample] = field(default_factory=list)
    held_out: list[TrainingExample] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    templates: dict[str, DatasetTemplate] = field(default_factory=dict)  # by dataset id
    example_dataset: dict[str, str] = field(default_factory=dict)  # sample id -> dataset id


async def dataset_template(task: db.Task, dataset: db.Dataset) -> DatasetTemplate:
    """Compile a dataset's template with its variables; raises the template module's errors."""
    rows = await db.Variable.filter(dataset=dataset).order_by("created")
    variables = [definition(v) for v in rows]
    template = ResultTemplate.compile(dataset.result_template, variables)
    return DatasetTemplate(
        dataset_id=dataset.id,
        template=template,
        system_prompt=dataset.system_prompt or task.system_prompt or None,
        user_prompt=dataset.user_prompt or task.user_prompt,
        variables=variables,
    )


async def missing_variables(dataset: db.Dataset) -> list[str]:
    """The variables the dataset's template names that it does not define (yet)."""
    defined = set(await db.Variable.filter(dataset=dataset).values_list("name", flat=True))
    return sorted(template_variables(dataset.result_template) - defined)


async def collect_task_data(task: db.Task, store: ImageStore, seed: int = 0) -> TaskData:
    """Examples of every sample of every dataset attached to ``task``, split per dataset."""
    data = TaskData()
    links = await db.TaskDataset.filter(task=task).prefetch_related("dataset").order_by("created")
    if not links:
        data.problems["datasets"] = "the task has no datasets; attach one with add-dataset"
    for link in links:
        dataset = link.dataset
        key = f"dataset {dataset.id}"
        if not dataset.result_template.strip():
            data.problems[key] = "the dataset has no result_template"
            continue
        missing = await missing_variables(dataset)
        if missing:
            data.problems[key] = (
                f"its result_template names variables that are not defined yet: {', '.join(missing)}; "
                "create them (POST /vlm/v2/variable/) first"
            )
            continue
        try:
            compiled = await dataset_template(task, dataset)
        except ValueError as exc:  # TemplateError, VariableDefinitionError
            data.problems[key] = f"its result_template cannot be used: {exc}"
            continue
        data.templates[str(dataset.id)] = compiled
        records = await sample_records(dataset, store)
        if not records:
            data.problems[key] = "the dataset has no samples"
            continue
        split = build_examples(
            records,
            system_prompt=compiled.system_prompt,
            user_prompt=compiled.user_prompt,
            render=compiled.template.render,
            seed=seed,
        )
        for problem in split.problems:
            data.problems[f"sample {problem.sample_id}"] = f"{problem.name or 'unnamed'}: {problem.reason}"
        data.train += split.train
        data.held_out += split.held_out
        for example in split.train + split.held_out:
            data.example_dataset[example.sample_id] = str(dataset.id)
    if not data.problems and not data.train:
        data.problems["samples"] = "there are no training samples (all are marked test)"
    return data


async def sample_records(dataset: db.Dataset, store: ImageStore) -> list[SampleRecord]:
    samples = await db.Sample.filter(dataset=dataset).order_by("created", "id")
    ids = [s.id for s in samples]
    links = await db.SampleImage.filter(sample_id__in=ids).prefetch_related("image").order_by("position")
    values = await db.VariableValue.filter(sample_id__in=ids).prefetch_related("variable")
    images: dict[uuid.UUID, list[str]] = {}
    for link in links:
        images.setdefault(link.sample_id, []).append(FROM_JOB_FOLDER + image_key(link.image.sha256))
    answers: dict[uuid.UUID, dict[str, Any]] = {}
    for value in values:
        answers.setdefault(value.sample_id, {})[value.variable.name] = unwrap(value.value)
    return [
        SampleRecord(
            id=str(s.id),
            name=s.name,
            images=images.get(s.id, []),
            input_meta_data=dict(s.input_meta_data or {}),
            values=answers.get(s.id, {}),
            test=s.test,
            type=s.type,  # type: ignore[arg-type]  # the platform API only stores the three types
        )
        for s in samples
    ]


def example_payloads(examples: Sequence[TrainingExample]) -> list[dict[str, Any]]:
    """Examples as the training spec's JSON objects (``finetune.spec.Example`` fields)."""
    return [
        {
            "sample_id": e.sample_id,
            "system": e.system,
            "user": e.user,
            "images": e.images,
            "image_selection": e.image_selection,
            "target": e.target,
        }
        for e in examples
    ]
