"""A LoRA adapter on the tiny model for export tests, and helpers to run a model on an image prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROMPT = "Classify the image colour. Reply with JSON."


def make_adapter(
    base_dir: Path, out: Path, *, served_name: str = "tiny", seed: int = 0, std: float = 0.05
) -> Path:
    """A rank-8 LoRA on the language model with random, non-zero B matrices (so merging changes the model),
    saved as training saves it (``base_model_name_or_path`` = the served name). A larger ``std`` makes
    adapters that answer visibly differently from each other (the eviction tests tell them apart)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from finetune.train import language_lora_targets

    torch.manual_seed(seed)
    base = AutoModelForImageTextToText.from_pretrained(str(base_dir), dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=language_lora_targets(base))
    model = get_peft_model(base, config)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=std)
    model.peft_config["default"].base_model_name_or_path = served_name
    model.save_pretrained(str(out), save_embedding_layers=False)
    return out


def image_inputs(processor: Any, image: Path, prompt: str = PROMPT) -> Any:
    """Processor inputs of one user turn with ``image`` then ``prompt``, ready for generation."""
    from PIL import Image

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=[Image.open(image).convert("RGB")], return_tensors="pt")


def last_logits(model: Any, inputs: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(**inputs).logits[0, -1].float()


def greedy(model: Any, processor: Any, inputs: Any, max_new_tokens: int = 12) -> str:
    import torch

    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return str(processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
