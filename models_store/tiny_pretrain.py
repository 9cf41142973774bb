"""Brief full fine-tune of the random tiny model on generated image captions: the tiny model's curriculum.

Teaches the tiny base to look at the image and to answer in a few text shapes (a sentence, JSON, YAML,
XML), so that LoRA fine-tuning on top of it has something to build on. Runs on CPU in seconds. The colours
it knows, their solid images and the caption shapes live here; ``tiny_model`` builds the model and calls
``pretrain_captions`` (this module imports nothing from it). The trainer in ``finetune`` has its own,
general collation: this one only pads the caption examples built here.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Any

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
}

PROMPTS_AND_ANSWERS: list[tuple[str, str]] = [
    ("What colour is the image?", "The image is {c}."),
    ("Describe the image.", "The image is {c}."),
    ("Answer in JSON: what colour is the image?", '{{"colour": "{c}"}}'),
    ("Answer in YAML: what colour is the image?", "colour: {c}"),
    ("Answer in XML: what colour is the image?", "<colour>{c}</colour>"),
]


def solid_image(colour: str, size: int = 56) -> Any:
    """A PNG-backed PIL image of one colour (``format`` is set, as some libraries require)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), COLOURS[colour]).save(buf, format="PNG")
    buf.seek(0)
    return Image.open(buf)


def solid_image_data_uri(colour: str, size: int = 56) -> str:
    """A ``data:image/png;base64,...`` URI of one colour, for demos."""
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), COLOURS[colour]).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def encode_example(processor: Any, prompt: str, answer: str, image: Any) -> dict[str, Any]:
    """Token ids, attention mask, labels (loss on the answer only), pixel values and grid for one example."""
    import torch

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    prompt_text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full_text = prompt_text + answer + "<|im_end|>\n"
    prompt_ids = processor(text=[prompt_text], images=[image], return_tensors="pt")["input_ids"][0]
    full = processor(text=[full_text], images=[image], return_tensors="pt")
    labels = full["input_ids"][0].clone()
    labels[: len(prompt_ids)] = -100
    return {
        "input_ids": full["input_ids"][0],
        "attention_mask": torch.ones_like(full["input_ids"][0]),
        "mm_token_type_ids": full["mm_token_type_ids"][0],
        "labels": labels,
        "pixel_values": full["pixel_values"],
        "image_grid_thw": full["image_grid_thw"],
    }


def caption_batch(examples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad caption examples (from ``encode_example``) into one batch with an attention mask."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    def padded(key: str, fill: int) -> Any:
        return pad_sequence([e[key] for e in examples], batch_first=True, padding_value=fill)

    return {
        "attention_mask": padded("attention_mask", 0),
        "input_ids": padded("input_ids", pad_id),
        "mm_token_type_ids": padded("mm_token_type_ids", 0),
        "labels": padded("labels", -100),
        "image_grid_thw": torch.cat([e["image_grid_thw"] for e in examples]),
        "pixel_values": torch.cat([e["pixel_values"] for e in examples]),
    }


def pretrain_captions(
    model: Any,
    processor: Any,
    steps: int,
    seed: int = 0,
    batch_size: int = 8,
    lr: float = 2e-3,
    progress: Callable[[str], None] | None = None,
) -> float:
    """Train ``model`` in place for ``steps`` batches; returns the last loss."""
    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    colours = list(COLOURS)
    pool = [
        encode_example(processor, p, a.format(c=c), solid_image(c))
        for c in colours
        for p, a in PROMPTS_AND_ANSWERS
    ]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps)
    )
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        batch = caption_batch([rng.choice(pool) for _ in range(batch_size)], pad_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        if progress and (step % 50 == 0 or step == steps - 1):
            progress(f"pre-training tiny model: step {step + 1}/{steps} loss {loss_value:.3f}")
    model.eval()
    return loss_value
