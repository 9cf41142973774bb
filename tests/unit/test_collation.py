"""Collation: the trainer's general ``finetune.data.collate`` and the tiny model's own ``caption_batch``."""

from __future__ import annotations

from typing import Any

import torch

from finetune.data import IGNORE_INDEX, collate
from models_store.tiny_pretrain import caption_batch

PAD = 7


def caption_example(n_tokens: int, answer: int, patches: int) -> dict[str, Any]:
    ids = torch.arange(100, 100 + n_tokens)
    labels = ids.clone()
    labels[: n_tokens - answer] = IGNORE_INDEX
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": (ids % 2).to(torch.int32),
        "labels": labels,
        "pixel_values": torch.full((patches, 3), float(n_tokens)),
        "image_grid_thw": torch.tensor([[1, 2, patches // 2]]),
    }


def test_collate_right_pads_per_token_tensors_and_joins_per_image_ones() -> None:
    short, long = caption_example(3, 1, 4), caption_example(5, 2, 6)
    batch = collate([short, long], PAD)
    assert batch["input_ids"].tolist() == [[100, 101, 102, PAD, PAD], [100, 101, 102, 103, 104]]
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 102, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["mm_token_type_ids"].dtype == torch.int32
    assert batch["mm_token_type_ids"][0].tolist() == [0, 1, 0, 0, 0]
    assert batch["pixel_values"].shape == (10, 3)
    assert batch["image_grid_thw"].tolist() == [[1, 2, 2], [1, 2, 3]]


def test_collate_leaves_out_per_image_tensors_no_example_has() -> None:
    text_only = [{k: v for k, v in caption_example(n, 1, 2).items() if v.dim() == 1} for n in (2, 4)]
    batch = collate(text_only, PAD)
    assert set(batch) == {"input_ids", "attention_mask", "mm_token_type_ids", "labels"}
    mixed = collate([text_only[0], caption_example(3, 1, 4)], PAD)
    assert mixed["pixel_values"].shape == (4, 3)


def test_caption_batches_are_what_the_trainer_would_collate() -> None:
    examples = [caption_example(n, 2, 2 * n) for n in (6, 3, 9, 9)]
    ours, trainers = caption_batch(examples, PAD), collate(examples, PAD)
    assert set(ours) == set(trainers)
    for key, value in ours.items():
        assert value.dtype == trainers[key].dtype, key
        assert torch.equal(value, trainers[key]), key
