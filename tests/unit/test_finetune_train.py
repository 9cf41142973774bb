"""LoRA training on the pre-trained tiny base: answer-only mask, determinism, gradient accumulation,
resume, cancel, the adapter's format, and that a new task is really learned (held-out accuracy).

Real torch, transformers and peft on CPU; runs are a few steps of a 10M-parameter model, so the file takes
well under two minutes.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoProcessor

from finetune.curve import LossCurve
from finetune.data import IGNORE_INDEX, build_batch, encode
from finetune.progress import Progress
from finetune.spec import Example, HyperParameters, TrainSpec
from finetune.train import Cancelled, Trainer
from tests.support import colour_task


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Example], list[Example]]:
    root = tmp_path_factory.mktemp("colours")
    return colour_task.examples(root / "train", 4, seed=1), colour_task.examples(root / "held", 2, seed=2)


def make_spec(base: Path, out: Path, examples: list[Example], **hp: object) -> TrainSpec:
    return TrainSpec(
        base_model=str(base),
        served_base_name="tiny",
        output_dir=str(out),
        examples=examples,
        hyperparameters=msgspec.convert(hp, HyperParameters),
    )


def quiet() -> Progress:
    return Progress(out=io.StringIO(), human=False)


def losses(out: Path) -> list[float]:
    return [v for _, v in LossCurve.read(out / "loss_curve.json").train]


def test_labels_cover_exactly_the_answer(tiny_dir: Path, tmp_path: Path) -> None:
    processor = AutoProcessor.from_pretrained(tiny_dir)
    for i in range(2):
        Image.new("RGB", (56, 56), (200, 10, 10)).save(tmp_path / f"{i}.png")
    images = [str(tmp_path / "0.png"), str(tmp_path / "1.png")]
    ex = Example(system="Be terse.", user="What colour?", target='{"color": "red"}', images=images)
    enc = encode(processor, ex, images)
    answer = enc["labels"] != IGNORE_INDEX
    assert processor.tokenizer.decode(enc["input_ids"][answer]) == '{"color": "red"}<|im_end|>'
    assert bool(answer[-int(answer.sum()) :].all())  # the answer is one block at the end
    assert torch.equal(enc["labels"][answer], enc["input_ids"][answer])
    prompt = processor.tokenizer.decode(enc["input_ids"][~answer])
    assert prompt.count("<|vision_start|>") == 2 and "Be terse." in prompt and prompt.endswith("assistant")
    assert enc["image_grid_thw"].shape[0] == 2
    assert int(enc["mm_token_type_ids"][answer].sum()) == 0


def test_batches_pad_without_learning_the_padding(tiny_dir: Path, data: tuple[list[Example], ...]) -> None:
    processor = AutoProcessor.from_pretrained(tiny_dir)
    texts = [Example(user="Say hi.", target="hi"), Example(user="Describe it.", target="a long answer")]
    batch = build_batch(processor, [*texts, data[0][0]], [(0, 0), (0, 1), (0, 2)], seed=0, pad_id=0)
    assert batch["input_ids"].shape[0] == 3 and batch["image_grid_thw"].shape[0] == 1
    padded = batch["attention_mask"] == 0
    assert bool(padded.any()) and bool((batch["labels"][padded] == IGNORE_INDEX).all())


def test_same_spec_same_loss_curve_and_seed_matters(tiny_dir: Path, tmp_path: Path, data: tuple) -> None:
    hp = {"max_steps": 4, "batch_size": 2, "lora_dropout": 0.1, "seed": 3}
    for name in ("a", "b"):
        Trainer(make_spec(tiny_dir, tmp_path / name, data[0], **hp), quiet()).run()
    Trainer(make_spec(tiny_dir, tmp_path / "c", data[0], **{**hp, "seed": 4}), quiet()).run()
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


def test_gradient_accumulation_matches_a_larger_batch(tiny_dir: Path, tmp_path: Path, data: tuple) -> None:
    Trainer(make_spec(tiny_dir, tmp_path / "big", data[0], max_steps=3, batch_size=4), quiet()).run()
    split = make_spec(tiny_dir, tmp_path / "acc", data[0], max_steps=3, batch_size=2, gradient_accumulation=2)
    Trainer(split, quiet()).run()
    assert losses(tmp_path / "big") == pytest.approx(losses(tmp_path / "acc"), rel=1e-4)


def test_cancel_checkpoints_and_resume_gives_the_same_run(
    tiny_dir: Path, tmp_path: Path, data: tuple
) -> None:
    hp = {"max_steps": 6, "batch_size": 2, "checkpoint_every": 2, "lora_dropout": 0.1}
    Trainer(make_spec(tiny_dir, tmp_path / "whole", data[0], **hp), quiet()).run()
    spec = make_spec(tiny_dir, tmp_path / "parts", data[0], **hp)
    first = Trainer(spec, quiet())
    first.on_step = lambda step: first.request_stop() if step == 3 else None
    with pytest.raises(Cancelled) as info:
        first.run()
    assert info.value.step == 3 and info.value.path is not None
    assert (info.value.path / "adapter_model.safetensors").is_file()
    progress = quiet()
    Trainer(spec, progress).run(resume=True)
    assert progress.events[0]["resumed_from_step"] == 3
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")
    with (
        safe_open(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"), "pt") as a,
        safe_open(str(tmp_path / "parts" / "adapter" / "adapter_model.safetensors"), "pt") as b,
    ):
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())  # noqa: SIM118


def test_adapter_is_language_model_only_and_names_the_served_base(
    tiny_dir: Path, tmp_path: Path, data: tuple
) -> None:
    progress = quiet()
    adapter = Trainer(make_spec(tiny_dir, tmp_path, data[0], max_steps=2, batch_size=2), progress).run()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny" and config["r"] == 16
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all("language_model" in k for k in keys)
    assert not any("visual" in k or "lm_head" in k for k in keys)
    assert {k.split(".")[-3] for k in keys} >= {"q_proj", "v_proj", "down_proj"}
    with Image.open(tmp_path / "loss_curve.png") as png:
        assert png.format == "PNG" and png.size == (640, 360)
    kinds = [e["event"] for e in progress.events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "checkpoint" in kinds
    assert progress.events[-1]["adapter_dir"] == str(adapter)
    step = next(e for e in progress.events if e["event"] == "step")
    assert {"step", "total_steps", "loss", "lr", "samples_per_s", "eta_s"} <= set(step)


def test_cli_sigterm_writes_checkpoint_and_cancelled_event(
    tiny_dir: Path, tmp_path: Path, data: tuple
) -> None:
    spec = make_spec(tiny_dir, tmp_path / "out", data[0], max_steps=100000, batch_size=1)
    (tmp_path / "spec.json").write_bytes(msgspec.json.encode(spec))
    cmd = [sys.executable, "-m", "finetune", "run", str(tmp_path / "spec.json"), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    events = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "step" or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    events += [json.loads(line) for line in proc.stdout]
    assert proc.wait(60) == 128 + signal.SIGTERM
    last = events[-1]
    assert last["event"] == "cancelled" and last["step"] >= 1
    assert (Path(last["checkpoint"]) / "trainer_state.pt").is_file()


def test_cli_invalid_spec_reports_error_event(tmp_path: Path) -> None:
    bad = {"base_model": "nowhere", "served_base_name": "x", "output_dir": "o", "examples": [],
           "hyperparameters": {"lora_rank": 3}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(bad))
    run = subprocess.run(
        [sys.executable, "-m", "finetune", "run", str(tmp_path / "spec.json"), "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    event = json.loads(run.stdout.strip().splitlines()[-1])
    assert event["event"] == "error" and len(event["problems"]) == 3
    assert "lora_rank" in event["message"]


def test_lora_learns_a_new_task_held_out(tiny_dir: Path, tmp_path: Path, data: tuple) -> None:
    train, held_out = data
    trainer = Trainer(make_spec(tiny_dir, tmp_path, train, max_steps=60), quiet())
    trainer.setup()  # LoRA starts as a no-op (B = 0): this is the base model
    before = colour_task.accuracy(trainer.model, trainer.processor, held_out)
    trainer.run()
    after = colour_task.accuracy(trainer.model, trainer.processor, held_out)
    assert before <= 0.2, f"the base model already does the task ({before:.0%}); the test proves nothing"
    assert after >= 0.9, f"held-out accuracy only {after:.0%} after training"
