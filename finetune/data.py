"""Training examples to model inputs, one batch at a time.

An example becomes chat messages (system, user with its images, assistant with the target) rendered by the
model's own processor and chat template, so training sees exactly the prompt format the served model sees.
The prompt is tokenised with its images by the processor; the answer (everything the template appends after
the generation prompt: the target and the end-of-turn tokens) is tokenised on its own and appended, so the
boundary is exact and the loss mask covers the answer tokens only. Images are loaded when their batch is
built, not up front, so memory does not grow with the data set.

The order of examples and each epoch's image choice are functions of (seed, epoch): a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from finetune.examples import images_for_epoch
from finetune.spec import ChatTurn, Example

IGNORE_INDEX = -100
DEFAULT_IMAGE_TOKEN = "<|image_pad|>"  # Qwen2-VL's; processors name theirs in ``image_token``


def chat_messages(example: Example, n_images: int) -> list[dict[str, Any]]:
    """The prompt of an example as chat messages: images first, then the user's text."""
    messages: list[dict[str, Any]] = []
    if example.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": example.system}]})
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": example.user})
    messages.append({"role": "user", "content": content})
    return messages


def prompt_and_answer_text(processor: Any, example: Example, n_images: int) -> tuple[str, str]:
    """The rendered prompt (ending with the generation prompt) and the answer text the template appends.

    The answer is what the template renders for the assistant turn beyond the prompt; when a template does
    not render the prompt as a prefix of the full conversation (some add reasoning markers), the answer is
    the target followed by the tokenizer's end-of-sequence token.
    """
    messages = chat_messages(example, n_images)
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    answer_turn = {"role": "assistant", "content": [{"type": "text", "text": example.target}]}
    full = processor.apply_chat_template([*messages, answer_turn], tokenize=False)
    if full.startswith(prompt) and example.target in full[len(prompt) :]:
        return prompt, full[len(prompt) :]
    return prompt, example.target + (processor.tokenizer.eos_token or "")


def load_image(path: str) -> Any:
    """An image file as an RGB PIL image."""
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def turn_message(turn: ChatTurn) -> dict[str, Any]:
    """A conversation turn as the chat template's message (content as parts, images as ``image`` parts)."""
    if isinstance(turn.content, str):
        return {"role": turn.role, "content": [{"type": "text", "text": turn.content}]}
    parts = [
        {"type": "image"} if p.type == "image" else {"type": "text", "text": p.text} for p in turn.content
    ]
    return {"role": turn.role, "content": parts}


def chat_segments(processor: Any, turns: Sequence[ChatTurn]) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, learned) pieces, up to the last learned assistant turn.

    A learned piece is what the template appends for an assistant turn of weight 1 beyond the generation
    prompt (its text and end-of-turn tokens), as for single-turn examples. Needs a template that renders a
    conversation's prefix as a prefix of the whole (Qwen's, Llama's and most others do).
    """
    messages = [turn_message(t) for t in turns]
    full = processor.apply_chat_template(messages, tokenize=False)
    segments: list[tuple[str, bool]] = []
    cursor = 0
    for i, turn in enumerate(turns):
        if turn.role != "assistant" or not turn.weight:
            continue
        prompt = processor.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        upto = processor.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (upto.startswith(prompt) and full.startswith(upto)):
            raise ValueError("the model's chat template does not render a conversation turn by turn")
        segments += [(full[cursor : len(prompt)], False), (full[len(prompt) : len(upto)], True)]
        cursor = len(upto)
    return segments


def encode_chat(processor: Any, example: Example, image_paths: Sequence[str]) -> dict[str, Any]:
    """Token ids, labels on the learned assistant turns only, and image tensors of a conversation.

    Each prompt piece goes through the processor with its own images (so image tokens are expanded as in
    serving), each learned piece through the tokenizer; the pieces are concatenated.
    """
    import torch

    images = [load_image(p) for p in image_paths]
    token = getattr(processor, "image_token", None) or DEFAULT_IMAGE_TOKEN
    pieces: list[dict[str, Any]] = []
    used = 0
    for number, (text, learned) in enumerate(chat_segments(processor, example.messages or [])):
        if not text:
            continue
        if learned:
            ids = torch.tensor(
                processor.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long
            )
            pieces.append({"input_ids": ids, "labels": ids.clone()})
            continue
        count = text.count(token)
        shown, used = images[used : used + count], used + count
        extra = {} if number == 0 else {"add_special_tokens": False}
        inputs = processor(text=[text], images=shown or None, return_tensors="pt", **extra)
        ids = inputs["input_ids"][0]
        piece = {"input_ids": ids, "labels": torch.full_like(ids, IGNORE_INDEX)}
        for key, value in inputs.items():
            if key not in ("input_ids", "attention_mask"):
                piece[key] = (
                    value[0] if value.dim() == 2 and value.shape == inputs["input_ids"].shape else value
                )
        pieces.append(piece)
    return _joined(pieces)


def _joined(pieces: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pieces concatenated: per-token tensors end to end (0 where a piece lacks one), per-image ones too."""
    import torch

    lengths = [len(p["input_ids"]) for p in pieces]
    per_token = {k for p in pieces for k, v in p.items() if v.dim() == 1}
    out: dict[str, Any] = {}
    for key in sorted(per_token):
        dtype = next(p[key].dtype for p in pieces if key in p)
        out[key] = torch.cat(
            [
                p[key] if key in p else torch.zeros(n, dtype=dtype)
                for p, n in zip(pieces, lengths, strict=True)
            ]
        )
    for key in sorted({k for p in pieces for k, v in p.items() if v.dim() != 1}):
        out[key] = torch.cat([p[key] for p in pieces if key in p])
    return out


def encode(processor: Any, example: Example, image_paths: Sequence[str]) -> dict[str, Any]:
    """Token ids, answer-only labels and image tensors of one example."""
    import torch

    if example.messages is not None:
        return encode_chat(processor, example, image_paths)
    images = [load_image(p) for p in image_paths]
    prompt, answer = prompt_and_answer_text(processor, example, len(images))
    inputs = processor(text=[prompt], images=images or None, return_tensors="pt")
    answer_ids = torch.tensor(
        processor.tokenizer(answer, add_special_tokens=False)["input_ids"], dtype=torch.long
    )
    prompt_ids = inputs["input_ids"][0]
    out: dict[str, Any] = {
        "input_ids": torch.cat([prompt_ids, answer_ids]),
        "labels": torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), answer_ids]),
    }
    for key, value in inputs.items():
        if key in ("input_ids", "attention_mask"):
            continue
        if value.dim() == 2 and value.shape == inputs["input_ids"].shape:  # per-token, e.g. mm_token_type_ids
            out[key] = torch.cat([value[0], torch.zeros(len(answer_ids), dtype=value.dtype)])
        else:
            out[key] = value
    return out


def epoch_order(n_examples: int, epoch: int, seed: int) -> list[int]:
    """A seeded permutation of example indices for one epoch."""
    order = list(range(n_examples))
    random.Random(f"order:{seed}:{epoch}").shuffle(order)
    return order


Slot = tuple[int, int]  # (epoch, example index)


def micro_batches(n_examples: int, batch_size: int, seed: int) -> Iterator[list[Slot]]:
    """Endless micro-batches of (epoch, example index); an epoch's last short batch is filled from the next
    epoch's order rather than dropped, so every micro-batch has ``batch_size`` examples."""
    epoch = 0
    pending: list[Slot] = []
    while True:
        pending += [(epoch, i) for i in epoch_order(n_examples, epoch, seed)]
        epoch += 1
        while len(pending) >= batch_size:
            chunk, pending = pending[:batch_size], pending[batch_size:]
            yield chunk


def build_batch(
    processor: Any, examples: Sequence[Example], slots: Sequence[Slot], seed: int, pad_id: int
) -> dict[str, Any]:
    """Encode and collate one micro-batch (images are read here, per batch)."""
    encoded = [
        encode(processor, examples[i], images_for_epoch(examples[i], epoch, seed)) for epoch, i in slots
    ]
    return collate(encoded, pad_id)


def collate(examples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad encoded examples into one batch.

    Per-token tensors (``input_ids``, ``labels`` and any other 1-D tensor as long as ``input_ids``, such as
    ``mm_token_type_ids``) are padded: ids with ``pad_id``, labels with ``IGNORE_INDEX``, the rest with 0; an
    ``attention_mask`` is built. Per-image tensors (``pixel_values``, ``image_grid_thw``, ...) are
    concatenated over the examples that have them and left out when none has.
    """
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    fill = {"input_ids": pad_id, "labels": IGNORE_INDEX}
    batch: dict[str, Any] = {"attention_mask": torch.zeros((len(examples), width), dtype=torch.long)}
    token_keys = [k for k, v in examples[0].items() if v.dim() == 1]
    for key in token_keys:
        batch[key] = torch.full((len(examples), width), fill.get(key, 0), dtype=examples[0][key].dtype)
    for row, ex in enumerate(examples):
        n = len(ex["input_ids"])
        batch["attention_mask"][row, :n] = 1
        for key in token_keys:
            batch[key][row, :n] = ex[key]
    other_keys = {k for e in examples for k, v in e.items() if v.dim() != 1}
    for key in sorted(other_keys):
        batch[key] = torch.cat([e[key] for e in examples if key in e])
    return batch


def pad_token_id(processor: Any) -> int:
    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return int(pad if pad is not None else 0)
