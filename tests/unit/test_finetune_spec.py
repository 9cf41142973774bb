"""Training specs: decoding, defaults by model size, and validation messages (pure Python, no torch)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import msgspec
import pytest

from finetune.spec import (
    Example,
    HyperParameters,
    SpecError,
    TrainSpec,
    count_parameters,
    defaults_for,
    load_spec,
    read_examples,
    resolve,
)


def fake_model(root: Path, shapes: dict[str, list[int]]) -> Path:
    """A directory with config.json and a safetensors file whose header declares ``shapes`` (float32)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}")
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = 4
        for d in shape:
            size *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * offset)
    return root


def write_spec(tmp_path: Path, **fields: Any) -> Path:
    model = fake_model(tmp_path / "model", {"w": [10, 10]})
    (tmp_path / "a.png").write_bytes(b"png")
    spec = {
        "base_model": str(model),
        "served_base_name": "tiny",
        "output_dir": "out",
        "examples": [{"user": "What colour?", "target": "red", "images": ["a.png"]}],
        **fields,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.problems


def test_valid_spec_resolves_relative_paths(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    assert spec.output_dir == str(tmp_path / "out")
    assert isinstance(spec.examples, list) and spec.examples[0].images == [str(tmp_path / "a.png")]


def test_count_parameters_reads_safetensors_headers(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m", {"a": [3, 4], "b": [5]})
    assert count_parameters(model) == 12 + 5  # the header's __metadata__ entry is not a tensor


def test_defaults_depend_on_model_size_and_spec_overrides_win() -> None:
    tiny, big = defaults_for(5_000_000), defaults_for(7_000_000_000)
    assert tiny["learning_rate"] > big["learning_rate"]
    assert big["batch_size"] * big["gradient_accumulation"] >= 8
    resolved = resolve(HyperParameters(learning_rate=1e-5, lora_rank=32), 7_000_000_000)
    assert (resolved.learning_rate, resolved.lora_rank) == (1e-5, 32)
    assert resolved.gradient_accumulation == big["gradient_accumulation"]


def test_rank_vllm_cannot_serve_is_refused_naming_the_allowed_ranks(tmp_path: Path) -> None:
    problems = problems_of(write_spec(tmp_path, hyperparameters={"lora_rank": 4}))
    assert len(problems) == 1
    assert "hyperparameters.lora_rank" in problems[0] and "16" in problems[0] and "4" in problems[0]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        base_model=str(tmp_path / "nowhere"),
        served_base_name=" ",
        examples=[{"user": "q", "target": " ", "images": ["missing.png"]}],
        hyperparameters={"learning_rate": 2.0, "batch_size": 0, "lora_dropout": 1.5},
    )
    text = "\n".join(problems_of(path))
    for needle in (
        "base_model:",
        "served_base_name:",
        "examples[0].target: empty",
        "missing.png does not exist",
        "learning_rate",
        "batch_size: must be at least 1",
        "lora_dropout",
    ):
        assert needle in text


def test_no_examples_is_refused(tmp_path: Path) -> None:
    assert any("at least one training example" in p for p in problems_of(write_spec(tmp_path, examples=[])))


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    problems = problems_of(write_spec(tmp_path, hyperparameters={"epochs": "three"}))
    assert "hyperparameters.epochs" in problems[0]


def test_too_many_images_is_refused(tmp_path: Path) -> None:
    for i in range(11):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    images = [f"{i}.png" for i in range(11)]
    problems = problems_of(write_spec(tmp_path, examples=[{"user": "q", "target": "t", "images": images}]))
    assert problems == ["examples[0].images: 11 images; at most 10"]


def test_jsonl_examples_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.png").write_bytes(b"x")
    lines = [msgspec.json.encode(Example(user="q", target="t", images=["x.png"])), b"", b'{"user": "q"}']
    (data / "train.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(SpecError) as info:
        read_examples(str(data / "train.jsonl"), "examples")
    assert info.value.problems[0].startswith(f"examples: {data / 'train.jsonl'} line 3:")
    assert "target" in info.value.problems[0]
    (data / "train.jsonl").write_bytes(lines[0] + b"\n")
    spec = load_spec(write_spec(tmp_path, examples="data/train.jsonl"))
    assert read_examples(spec.examples, "examples")[0].images == [str(data / "x.png")]


def test_unreadable_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    assert "no such file" in problems_of(tmp_path / "absent.json")[0].lower()
    (tmp_path / "bad.json").write_text("{not json")
    assert "bad.json" in problems_of(tmp_path / "bad.json")[0]


def test_spec_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, finetune.spec, finetune.progress, finetune.curve; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gateway_examples_decode_into_spec_examples() -> None:
    raw = {"sample_id": "s1", "system": None, "user": "u", "images": ["/a.png"], "image_selection": "one",
           "target": "t", "values": {"x": 1}}  # fmt: skip
    ex = msgspec.convert(raw, Example)
    assert (ex.sample_id, ex.image_selection) == ("s1", "one")
    assert TrainSpec(base_model="m", served_base_name="m", output_dir="o", examples=[ex]).examples == [ex]
