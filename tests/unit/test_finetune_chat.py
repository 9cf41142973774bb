"""Conversation examples (OpenAI's chat fine-tuning format) in the trainer: the loss covers exactly the
assistant turns of weight 1, images land where their parts are, and a spec of conversations trains with a
held-out loss reported on the way.

Real torch and transformers on the pre-trained tiny base (a few seconds)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import msgspec
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from PIL import Image
from transformers import AutoProcessor

from finetune.data import IGNORE_INDEX, encode
from finetune.progress import Progress
from finetune.spec import ChatTurn, Example, HyperParameters, SpecError, TrainSpec, TurnPart, validate
from finetune.train import Trainer


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (56, 56), (220, 20, 20)).save(path)
    return str(path)


def conversation(image: str, first_weight: int = 1) -> Example:
    return Example(
        messages=[
            ChatTurn(role="system", content="Be brief."),
            ChatTurn(role="user", content=[TurnPart(type="image"), TurnPart(type="text", text="Colour?")]),
            ChatTurn(role="assistant", content="red", weight=first_weight),
            ChatTurn(role="user", content="And the opposite?"),
            ChatTurn(role="assistant", content="green"),
        ],
        images=[image],
    )


def learned_text(processor: Any, example: Example, image: str) -> str:
    encoded = encode(processor, example, [image])
    ids = encoded["input_ids"][encoded["labels"] != IGNORE_INDEX]
    return str(processor.tokenizer.decode(ids))


def test_loss_covers_every_assistant_turn_of_weight_one(tiny_dir: Path, image: str) -> None:
    processor = AutoProcessor.from_pretrained(tiny_dir)
    both = learned_text(processor, conversation(image), image)
    assert "red" in both and "green" in both and "Colour" not in both and "opposite" not in both
    only_last = learned_text(processor, conversation(image, first_weight=0), image)
    assert "red" not in only_last and "green" in only_last


def test_conversation_tokens_equal_the_whole_rendering(tiny_dir: Path, image: str) -> None:
    """Encoding in pieces gives the tokens of the whole conversation, with one image's tensors."""
    processor = AutoProcessor.from_pretrained(tiny_dir)
    example = conversation(image)
    encoded = encode(processor, example, [image])
    from finetune.data import turn_message

    whole = processor.apply_chat_template([turn_message(t) for t in example.messages or []], tokenize=False)
    reference = processor(text=[whole], images=[Image.open(image).convert("RGB")], return_tensors="pt")
    assert encoded["input_ids"].tolist() == reference["input_ids"][0].tolist()[: len(encoded["input_ids"])]
    assert encoded["image_grid_thw"].shape[0] == 1


def test_validation_names_conversation_problems(tiny_dir: Path, tmp_path: Path, image: str) -> None:
    bad = Example(
        messages=[
            ChatTurn(role="user", content="hi"),
            ChatTurn(role="assistant", content=[TurnPart(type="image")], weight=0),
        ],
        images=[],
    )
    spec = TrainSpec(
        base_model=str(tiny_dir), served_base_name="tiny", output_dir=str(tmp_path), examples=[bad]
    )
    with pytest.raises(SpecError) as caught:
        validate(spec)
    text = "\n".join(caught.value.problems)
    assert "no assistant message with weight 1" in text
    assert "images are allowed in user messages only" in text
    assert "1 image parts but 0 images" in text


def test_conversations_train_with_periodic_validation_loss(
    tiny_dir: Path, tmp_path: Path, image: str
) -> None:
    out = io.StringIO()
    spec = TrainSpec(
        base_model=str(tiny_dir), served_base_name="tiny", output_dir=str(tmp_path / "run"),
        examples=[conversation(image)] * 4, held_out=[conversation(image)],
        hyperparameters=msgspec.convert({"max_steps": 4, "batch_size": 2, "eval_every": 2}, HyperParameters),
    )  # fmt: skip
    Trainer(spec, Progress(out=out, human=False)).run()
    events = [msgspec.json.decode(line) for line in out.getvalue().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert [s["step"] for s in steps if "valid_loss" in s] == [2, 4]
    tokens = [s["trained_tokens"] for s in steps]
    assert tokens == sorted(tokens) and tokens[0] > 0
    done = events[-1]
    assert done["event"] == "done" and done["trained_tokens"] == tokens[-1] and "held_out_loss" in done
