"""Samples to training examples (prompts, image selection, split, bad data) and evaluation metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from finetune.evaluate import evaluate
from finetune.examples import SampleRecord, build_examples, fill_prompt, images_for_epoch


def render(values: Mapping[str, Any]) -> str:
    if "color" not in values:
        raise ValueError("variable 'color' is required")
    return '{"color": "' + str(values["color"]) + '"}'


def sample(i: int, **kw: Any) -> SampleRecord:
    base: dict[str, Any] = {"id": f"s{i:02d}", "images": [f"/img/{i}.png"], "values": {"color": "red"}}
    return SampleRecord(**{**base, **kw})


def test_prompts_images_and_target() -> None:
    s = sample(1, input_meta_data={"style": "elegant", "n": 3}, images=["/a", "/b"], type="multi_ordered")
    split = build_examples(
        [s], system_prompt="sys", user_prompt="Style {{style}}, {{ n }} items", render=render
    )
    (ex,) = split.train
    assert (ex.system, ex.user, ex.target) == ("sys", "Style elegant, 3 items", '{"color": "red"}')
    assert ex.images == ["/a", "/b"] and ex.image_selection == "ordered" and split.held_out == []


def test_test_flag_holds_out_exactly_the_flagged_samples() -> None:
    samples = [sample(i, test=(i % 3 == 0)) for i in range(9)]
    split = build_examples(samples, system_prompt=None, user_prompt="q", render=render)
    assert split.split == "test_flag"
    assert sorted(e.sample_id for e in split.held_out) == ["s00", "s03", "s06"]
    assert len(split.train) == 6 and split.train[0].system is None


def test_seeded_split_is_80_20_and_reproducible() -> None:
    samples = [sample(i) for i in range(10)]
    a = build_examples(samples, system_prompt=None, user_prompt="q", render=render, seed=7)
    b = build_examples(list(reversed(samples)), system_prompt=None, user_prompt="q", render=render, seed=7)
    c = build_examples(samples, system_prompt=None, user_prompt="q", render=render, seed=8)
    assert (len(a.train), len(a.held_out), a.split) == (8, 2, "seeded_80_20")
    assert [e.sample_id for e in a.held_out] == [e.sample_id for e in b.held_out]
    seeds = {
        tuple(
            sorted(
                e.sample_id
                for e in build_examples(
                    samples, system_prompt=None, user_prompt="q", render=render, seed=k
                ).held_out
            )
        )
        for k in range(5)
    }
    assert len(seeds) > 1  # the seed matters
    assert len(c.held_out) == 2
    assert not {e.sample_id for e in a.held_out} & {e.sample_id for e in a.train}


def test_bad_samples_are_all_listed() -> None:
    samples = [
        sample(1, images=[], input_meta_data={"style": "x"}),
        sample(2, values={}, input_meta_data={"style": "x"}),
        sample(3, input_meta_data={}),
        sample(4, images=[f"/{i}" for i in range(11)], input_meta_data={"style": "x"}),
        sample(5, input_meta_data={"style": "x"}),
    ]
    split = build_examples(samples, system_prompt=None, user_prompt="Style {{style}}", render=render)
    reasons = {p.sample_id: p.reason for p in split.problems}
    assert set(reasons) == {"s01", "s02", "s03", "s04"}
    assert "no images" in reasons["s01"]
    assert "'color' is required" in reasons["s02"]
    assert "{{style}}" in reasons["s03"]
    assert "at most 10" in reasons["s04"]
    assert [e.sample_id for e in split.train] == ["s05"]


def test_fill_prompt_encodes_non_strings_and_refuses_missing_keys() -> None:
    assert fill_prompt("{{a}} {{b}}", {"a": [1, 2], "b": True}) == "[1,2] true"
    with pytest.raises(KeyError):
        fill_prompt("{{missing}}", {})


def test_images_for_epoch_by_type() -> None:
    imgs = [f"/{i}" for i in range(6)]
    split = build_examples(
        [
            sample(1, images=imgs, type="single"),
            sample(2, images=imgs),
            sample(3, images=imgs, type="multi_ordered"),
        ],
        system_prompt=None,
        user_prompt="q",
        render=render,
    )
    one, shuffled, ordered = sorted(split.train + split.held_out, key=lambda e: e.sample_id)
    picks = {images_for_epoch(one, epoch)[0] for epoch in range(30)}
    assert all(len(images_for_epoch(one, e)) == 1 for e in range(5)) and len(picks) > 1
    orders = {tuple(images_for_epoch(shuffled, epoch)) for epoch in range(10)}
    assert all(sorted(o) == imgs for o in orders) and len(orders) > 1
    assert images_for_epoch(shuffled, 3, seed=1) == images_for_epoch(shuffled, 3, seed=1)
    assert all(images_for_epoch(ordered, e) == imgs for e in range(5))


@dataclass
class Var:
    name: str
    type: str
    choices: list[Any] | None = None
    step_size: float | None = None
    min_value: float | None = None
    max_value: float | None = None


def test_metrics_per_variable_type() -> None:
    variables = [
        Var("color", "string", choices=["red", "blue"]),
        Var("count", "integer"),
        Var("ok", "boolean"),
        Var("score", "float", min_value=0, max_value=10),
        Var("caption", "string"),
        Var("tags", "array"),
    ]
    expected = [
        {"color": "red", "count": 3, "ok": True, "score": 5.0, "caption": "A red box.", "tags": ["a", "b"]},
        {"color": "blue", "count": 1, "ok": False, "score": 2.0, "caption": "Blue", "tags": ["c"]},
        {"color": "red", "count": 2, "ok": True, "score": 9.0, "caption": "x", "tags": []},
    ]
    predicted: list[Mapping[str, Any] | None] = [
        {"color": "red", "count": 4, "ok": True, "score": 5.05, "caption": "a  red box", "tags": ["b", "a"]},
        {"color": "red", "count": 1, "ok": 0, "score": 3.0, "caption": "Blue", "tags": ["c"]},
        None,
    ]
    report = evaluate(variables, expected, predicted)
    m = report.variables
    assert report.samples == 3 and report.valid_rate == pytest.approx(2 / 3)
    assert m["color"].accuracy == pytest.approx(1 / 3)
    assert m["count"].accuracy == pytest.approx(1 / 3) and m["count"].mae == pytest.approx(0.5)
    assert m["ok"].accuracy == pytest.approx(1 / 3)  # 0 is not False
    assert m["score"].accuracy == pytest.approx(1 / 3) and m["score"].mae == pytest.approx(0.525)
    assert m["caption"].exact == pytest.approx(1 / 3) and m["caption"].normalized == pytest.approx(2 / 3)
    assert m["tags"].exact == pytest.approx(1 / 3) and m["tags"].normalized == pytest.approx(2 / 3)
    primaries = [1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3]
    assert report.score == pytest.approx(sum(primaries) / 6)


def test_perfect_and_empty_predictions() -> None:
    variables = [Var("n", "integer")]
    assert evaluate(variables, [{"n": 1}], [{"n": 1}]).score == 1.0
    worst = evaluate(variables, [{"n": 1}], [None])
    assert (worst.score, worst.valid_rate, worst.variables["n"].mae) == (0.0, 0.0, None)
    with pytest.raises(ValueError):
        evaluate(variables, [{"n": 1}], [])
