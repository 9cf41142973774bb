"""A small learnable fine-tuning task on generated images, for tests and benchmarks.

Images are solid colours with a seeded jitter per image (so held-out images are new images); the answer
is JSON in a shape the tiny model was not pre-trained on (``{"color": ...}`` under a new prompt, where
pre-training used ``{"colour": ...}`` and captions). Held-out accuracy is exact match of greedy output.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from finetune.spec import Example
from models_store.tiny_model import COLOURS

PROMPT = "Classify the image colour. Reply with JSON."
TASK_COLOURS = ["red", "green", "blue", "yellow", "black", "white"]


def target_for(colour: str) -> str:
    return '{"color": "' + colour + '"}'


def write_images(root: Path, per_colour: int, seed: int, size: int = 56) -> list[tuple[Path, str]]:
    """``per_colour`` jittered PNGs of each task colour under ``root``; returns (path, colour) pairs."""
    from PIL import Image

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for colour in TASK_COLOURS:
        for i in range(per_colour):
            rgb = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[colour])
            path = root / f"{colour}-{seed}-{i}.png"
            Image.new("RGB", (size, size), rgb).save(path)
            out.append((path, colour))
    return out


def examples(root: Path, per_colour: int, seed: int) -> list[Example]:
    return [
        Example(user=PROMPT, target=target_for(colour), images=[str(path)], sample_id=path.stem)
        for path, colour in write_images(root, per_colour, seed)
    ]


def generate(model: Any, processor: Any, example: Example, max_new_tokens: int = 16) -> str:
    """Greedy answer of a transformers model (base or peft-wrapped) to an example's prompt."""
    import torch

    from finetune.data import chat_messages, load_image

    images = [load_image(p) for p in example.images]
    prompt = processor.apply_chat_template(
        chat_messages(example, len(images)), tokenize=False, add_generation_prompt=True
    )
    inputs = processor(text=[prompt], images=images or None, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return str(processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)).strip()


def accuracy(model: Any, processor: Any, held_out: list[Example]) -> float:
    model.eval()
    hits = sum(generate(model, processor, ex) == ex.target for ex in held_out)
    return hits / len(held_out)
