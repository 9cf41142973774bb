"""Recognition logic without an engine: training examples fit the trainer's spec, the split is seeded and
per label, code probabilities come from masked logprobs, and the version metrics count right."""

from __future__ import annotations

import uuid

import msgspec

from finetune.spec import Example
from gateway.openai_api.protocol import ChatCompletion
from gateway.recognition.classifier import code_probabilities, spec_for
from gateway.recognition.publication import score
from gateway.recognition.training import HeldOutImage, LabelledImage, examples, split


class _Label:
    def __init__(self, name: str) -> None:
        self.id, self.name = uuid.uuid4(), name


def test_examples_are_valid_trainer_examples_for_both_types() -> None:
    a, b = _Label("cat"), _Label("dog")
    image = LabelledImage(uuid.uuid4(), "../../images/x", {a.id})
    for kind, targets in (("multi_class", ["A"]), ("multi_label", ["Y", "N"])):
        spec = spec_for(kind, [(a.id, a.name), (b.id, b.name)])
        made = [msgspec.convert(e, Example) for e in examples(spec, image)]
        assert [e.target for e in made] == targets


def test_split_holds_out_a_fifth_of_each_label_seeded() -> None:
    labels = [_Label("a"), _Label("b")]
    images = {}
    for label in labels:
        for _ in range(25):
            i = LabelledImage(uuid.uuid4(), "p", {label.id})
            images[i.id] = i
    held = split(labels, images, seed=0)  # type: ignore[arg-type]
    assert len(held) == 10 and split(labels, images, seed=0) == held != split(labels, images, seed=1)  # type: ignore[arg-type]


def test_code_probabilities_renormalise_over_the_codes() -> None:
    answer = msgspec.convert(
        {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [{
            "index": 0, "message": {"role": "assistant", "content": "A"}, "finish_reason": "length",
            "logprobs": {"content": [{"token": "A", "logprob": -0.1, "top_logprobs": [
                {"token": "A", "logprob": -0.1}, {"token": "B", "logprob": -2.5},
                {"token": "<|im_start|>", "logprob": -9999.0}]}]}}]},
        ChatCompletion,
    )  # fmt: skip
    probs = code_probabilities(answer, ["A", "B", "C"])
    assert abs(sum(probs.values()) - 1) < 1e-9 and probs["A"] > 0.9 and probs["C"] == 0.0


def test_score_counts_accuracy_precision_recall_and_the_matrix() -> None:
    a, b = _Label("cat"), _Label("dog")
    spec = spec_for("multi_class", [(a.id, a.name), (b.id, b.name)])
    images = [HeldOutImage(id=str(i), path="p", labels=[str(t.id)]) for i, t in enumerate([a, a, b])]
    probs = [
        {str(a.id): 0.9, str(b.id): 0.1},
        {str(a.id): 0.2, str(b.id): 0.8},
        {str(a.id): 0.3, str(b.id): 0.7},
    ]
    out = score(spec, images, probs)
    assert out["accuracy"] == round(2 / 3, 4) and len(out["failed_images"]) == 1
    assert out["confusion_matrix"] == {"cat": {"cat": 1, "dog": 1}, "dog": {"cat": 0, "dog": 1}}
    assert out["labels"]["cat"]["precision"] == 1.0 and out["labels"]["cat"]["recall"] == 0.5
    assert out["labels"]["dog"]["precision"] == 0.5 and out["labels"]["dog"]["recall"] == 1.0
