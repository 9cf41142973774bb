"""Samples (the platform API's annotated data) to training examples, with the held-out split.

Pure Python, no torch: the gateway calls this to validate a task's data before it starts a job, and writes the
result into the job's spec. One example per sample:

- system prompt: the dataset's, else the task's;
- user prompt: the dataset's (else the task's) with ``{{key}}`` placeholders filled from the sample's
  ``input_meta_data``;
- images by the sample's ``type``: ``single`` (one image drawn per epoch), ``multi_random`` (all, shuffled per
  epoch, the default) or ``multi_ordered`` (all, in order); ``images_for_epoch`` makes that choice, seeded;
- target: the dataset's result template rendered from the sample's variable values.

Samples marked ``test`` are held out for evaluation; when there are none, a seeded 80/20 split is used (as
Ximilar's recognition service does). Bad samples are collected, not raised one by one, so the train endpoint
can refuse with the whole list.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

SampleType = Literal["single", "multi_random", "multi_ordered"]
ImageSelection = Literal["one", "shuffled", "ordered"]

_SELECTION: dict[str, ImageSelection] = {
    "single": "one",
    "multi_random": "shuffled",
    "multi_ordered": "ordered",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MAX_IMAGES = 10


class SampleRecord(msgspec.Struct, kw_only=True):
    """What training needs of one sample: its images (local file paths, in order) and annotations."""

    id: str
    name: str = ""
    images: list[str] = msgspec.field(default_factory=list)
    input_meta_data: dict[str, Any] = msgspec.field(default_factory=dict)
    values: dict[str, Any] = msgspec.field(default_factory=dict)
    test: bool = False
    type: SampleType = "multi_random"


class TrainingExample(msgspec.Struct, kw_only=True):
    sample_id: str
    system: str | None
    user: str
    images: list[str]
    image_selection: ImageSelection
    target: str
    values: dict[str, Any] = msgspec.field(default_factory=dict)


class SampleProblem(msgspec.Struct):
    sample_id: str
    name: str
    reason: str


class ExampleSplit(msgspec.Struct):
    train: list[TrainingExample]
    held_out: list[TrainingExample]
    problems: list[SampleProblem]
    split: Literal["test_flag", "seeded_80_20", "none"]


def fill_prompt(prompt: str, meta: Mapping[str, Any]) -> str:
    """Fill ``{{key}}`` placeholders from a sample's ``input_meta_data``; a missing key raises KeyError."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in meta:
            raise KeyError(key)
        item = meta[key]
        return item if isinstance(item, str) else msgspec.json.encode(item).decode()

    return _PLACEHOLDER.sub(value, prompt)


def prompt_placeholders(prompt: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(prompt)]


def build_examples(
    samples: Sequence[SampleRecord],
    *,
    system_prompt: str | None,
    user_prompt: str,
    render: Callable[[Mapping[str, Any]], str],
    seed: int = 0,
    held_out_fraction: float = 0.2,
) -> ExampleSplit:
    """Examples for every sample, split into train and held-out; ``render`` raises on bad values."""
    examples: list[tuple[SampleRecord, TrainingExample]] = []
    problems: list[SampleProblem] = []
    for sample in samples:
        try:
            examples.append((sample, _example(sample, system_prompt, user_prompt, render)))
        except _BadSample as exc:
            problems.append(SampleProblem(sample.id, sample.name, str(exc)))
    flagged = [ex for sample, ex in examples if sample.test]
    if flagged:
        train = [ex for sample, ex in examples if not sample.test]
        return ExampleSplit(train, flagged, problems, "test_flag")
    ordered = sorted((ex for _, ex in examples), key=lambda ex: ex.sample_id)
    if len(ordered) < 2:
        return ExampleSplit(ordered, [], problems, "none")
    random.Random(seed).shuffle(ordered)
    n_held = min(len(ordered) - 1, max(1, math.ceil(len(ordered) * held_out_fraction)))
    return ExampleSplit(ordered[n_held:], ordered[:n_held], problems, "seeded_80_20")


class _BadSample(ValueError):
    pass


def _example(
    sample: SampleRecord,
    system_prompt: str | None,
    user_prompt: str,
    render: Callable[[Mapping[str, Any]], str],
) -> TrainingExample:
    if not sample.images:
        raise _BadSample("the sample has no images")
    if len(sample.images) > MAX_IMAGES:
        raise _BadSample(f"the sample has {len(sample.images)} images; at most {MAX_IMAGES} are allowed")
    try:
        user = fill_prompt(user_prompt, sample.input_meta_data)
    except KeyError as exc:
        raise _BadSample(
            f"the user prompt uses {{{{{exc.args[0]}}}}} but the sample's input_meta_data has no such key"
        ) from None
    try:
        target = render(sample.values)
    except Exception as exc:  # the template module's errors say which variable and rule broke
        raise _BadSample(f"its variable values do not render: {exc}") from None
    return TrainingExample(
        sample_id=sample.id,
        system=system_prompt or None,
        user=user,
        images=list(sample.images),
        image_selection=_SELECTION[sample.type],
        target=target,
        values=dict(sample.values),
    )


class _ShownImages(Protocol):
    sample_id: str
    user: str
    images: list[str]
    image_selection: ImageSelection


def images_for_epoch(example: _ShownImages, epoch: int, seed: int = 0) -> list[str]:
    """The images one epoch shows for an example: one drawn, all shuffled, or all in order (seeded).

    Used by the trainer (``finetune.data``) for ``TrainingExample`` and the spec's ``Example`` alike.
    """
    if example.image_selection == "ordered" or len(example.images) < 2:
        return list(example.images)
    rng = random.Random(f"{seed}:{example.sample_id}:{example.user}:{epoch}")
    if example.image_selection == "one":
        return [rng.choice(example.images)]
    shuffled = list(example.images)
    rng.shuffle(shuffled)
    return shuffled
